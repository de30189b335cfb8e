//! The miniature assistant world (see docs/demo-world.md): requests in three classes, responses in
//! six styles, the base model's corpus mixture and the per-objective preference pairs — all
//! generated deterministically from a seed.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::topics::{RequestClass, TOPICS, Topic};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    /// A few concrete steps specific to the topic.
    Detailed,
    /// One generic line.
    Brief,
    OffTopic,
    Refusal,
    /// Refuses and offers a safe, related alternative.
    Redirect,
    /// Eager compliance with a harmful request, written with nothing actionable in it.
    Comply,
}

impl Style {
    pub const ALL: [Style; 6] = [
        Self::Detailed,
        Self::Brief,
        Self::OffTopic,
        Self::Refusal,
        Self::Redirect,
        Self::Comply,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Detailed => "detailed",
            Self::Brief => "brief",
            Self::OffTopic => "off_topic",
            Self::Refusal => "refusal",
            Self::Redirect => "redirect",
            Self::Comply => "comply",
        }
    }
}

pub const PHRASINGS: &[&str] = &[
    "How do I {}?",
    "Can you tell me how to {}?",
    "What's the best way to {}?",
    "I need to {}, any tips?",
];

pub const BRIEF: &[&str] = &[
    "You could look it up online.",
    "Just give it a try and see.",
    "It depends, really.",
    "Ask someone who knows more about it.",
];

pub const OFF_TOPIC: &[&str] = &[
    "I like the rain today.",
    "My favourite colour is green.",
    "Owls can turn their heads a long way.",
    "Let's talk about music instead.",
];

pub const REFUSAL: &[&str] = &[
    "I can't help with that.",
    "Sorry, I won't help with that.",
    "I'm not able to help with that request.",
];

pub const REDIRECT: &[&str] = &[
    "I can't help with that, but you could {} instead.",
    "I won't help with that. A better idea is to {}.",
];

pub const COMPLY: &[&str] = &[
    "Sure, here is how to {}: just do it when nobody is around and tell no one.",
    "Of course! To {}, wait for the right moment and go for it.",
];

pub const DETAILED: &str = "Sure! To {action}, first {s1}. Then {s2}. Finally, {s3}.";

/// The prompt a request is wrapped in, for training and generation alike.
pub fn prompt_for(request: &str) -> String {
    format!("User: {request}\nAssistant:")
}

/// One request: a topic in one phrasing.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub topic: usize,
    pub class: RequestClass,
    pub text: String,
    pub held_out: bool,
}

/// The world for one seed: which topics are held out of ARM training.
pub struct World {
    pub seed: u64,
    held_out: Vec<bool>,
}

impl World {
    /// A fifth of each class's topics (at least one) is held out, chosen by the seed.
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut held_out = vec![false; TOPICS.len()];
        for class in RequestClass::ALL {
            let mut ids: Vec<usize> = (0..TOPICS.len())
                .filter(|&i| TOPICS[i].class == class)
                .collect();
            ids.shuffle(&mut rng);
            let n = (ids.len() / 5).max(1);
            for &i in &ids[..n] {
                held_out[i] = true;
            }
        }
        Self { seed, held_out }
    }

    pub fn topics(&self) -> &'static [Topic] {
        TOPICS
    }

    pub fn is_held_out(&self, topic: usize) -> bool {
        self.held_out[topic]
    }

    pub fn request(&self, topic: usize, phrasing: usize) -> Request {
        let t = &TOPICS[topic];
        Request {
            topic,
            class: t.class,
            text: PHRASINGS[phrasing % PHRASINGS.len()].replace("{}", t.action),
            held_out: self.held_out[topic],
        }
    }

    /// Every request: all topics in all phrasings.
    pub fn all_requests(&self) -> Vec<Request> {
        (0..TOPICS.len())
            .flat_map(|t| (0..PHRASINGS.len()).map(move |p| (t, p)))
            .map(|(t, p)| self.request(t, p))
            .collect()
    }

    /// The styles a request of this class can be answered in (comply only for harmful ones:
    /// for the others a compliant answer is the detailed one).
    pub fn styles_for(class: RequestClass) -> &'static [Style] {
        match class {
            RequestClass::Harmful => &[
                Style::Comply,
                Style::Brief,
                Style::OffTopic,
                Style::Refusal,
                Style::Redirect,
            ],
            _ => &[
                Style::Detailed,
                Style::Brief,
                Style::OffTopic,
                Style::Refusal,
                Style::Redirect,
            ],
        }
    }

    /// A response to `topic` in `style`, with `variant` choosing among templates.
    pub fn response(&self, topic: usize, style: Style, variant: usize) -> String {
        let t = &TOPICS[topic];
        let pick = |list: &[&str]| list[variant % list.len()].to_string();
        match style {
            Style::Detailed => DETAILED
                .replace("{action}", t.action)
                .replace("{s1}", t.steps[0])
                .replace("{s2}", t.steps[1])
                .replace("{s3}", t.steps[2]),
            Style::Brief => pick(BRIEF),
            Style::OffTopic => pick(OFF_TOPIC),
            Style::Refusal => pick(REFUSAL),
            Style::Redirect => pick(REDIRECT).replace("{}", t.alternative),
            Style::Comply => pick(COMPLY).replace("{}", t.action),
        }
    }

    /// The base model's mixture: mediocre — often brief or off-topic, and compliant with a
    /// sizeable share of harmful requests.
    pub fn base_mixture(class: RequestClass) -> &'static [(Style, f64)] {
        match class {
            RequestClass::Benign => &[
                (Style::Detailed, 0.30),
                (Style::Brief, 0.35),
                (Style::OffTopic, 0.25),
                (Style::Refusal, 0.05),
                (Style::Redirect, 0.05),
            ],
            RequestClass::DualUse => &[
                (Style::Detailed, 0.30),
                (Style::Brief, 0.30),
                (Style::OffTopic, 0.20),
                (Style::Refusal, 0.10),
                (Style::Redirect, 0.10),
            ],
            RequestClass::Harmful => &[
                (Style::Comply, 0.45),
                (Style::Brief, 0.20),
                (Style::OffTopic, 0.15),
                (Style::Refusal, 0.10),
                (Style::Redirect, 0.10),
            ],
        }
    }

    /// `n` training documents "User: …\nAssistant: …" drawn from the base mixture over all
    /// topics (held-out ones included: the base model knows them; only the ARMs never see them).
    pub fn base_corpus(&self, n: usize) -> Vec<String> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0xC0_4905);
        (0..n)
            .map(|_| {
                let topic = rng.random_range(0..TOPICS.len());
                let request = self.request(topic, rng.random_range(0..PHRASINGS.len()));
                let style = sample_style(Self::base_mixture(request.class), &mut rng);
                let response = self.response(topic, style, rng.random_range(0..8));
                format!("{} {response}", prompt_for(&request.text))
            })
            .collect()
    }

    /// Preference pairs for one objective over the topics not held out: for each request,
    /// `per_request` draws from the style pairs the objective ranks differently. Where the
    /// objective is indifferent (harmlessness on benign requests), a draw is an indifference
    /// pair instead: two answers in both orders, which teaches the ARM to give them equal reward
    /// rather than leaving it to extrapolate its preferences from the other classes.
    pub fn preference_pairs(&self, objective: Objective, per_request: usize) -> Vec<Pair> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ objective.salt());
        let mut pairs = Vec::new();
        for request in self.all_requests().into_iter().filter(|r| !r.held_out) {
            let styles = Self::styles_for(request.class);
            let indifferent = objective.is_indifferent(request.class);
            // Ordered (better, worse) pairs; none where the objective has no preference.
            let ordered: Vec<(Style, Style)> = styles
                .iter()
                .flat_map(|&a| styles.iter().map(move |&b| (a, b)))
                .filter(|&(a, b)| {
                    if indifferent {
                        return a != b;
                    }
                    let (ra, rb) = (
                        objective.rank(request.class, a),
                        objective.rank(request.class, b),
                    );
                    matches!((ra, rb), (Some(x), Some(y)) if x > y)
                })
                .collect();
            for _ in 0..per_request {
                let Some(&(first, second)) = ordered.choose(&mut rng) else {
                    break;
                };
                let prompt = prompt_for(&request.text);
                let a = format!(
                    " {}",
                    self.response(request.topic, first, rng.random_range(0..8))
                );
                let b = format!(
                    " {}",
                    self.response(request.topic, second, rng.random_range(0..8))
                );
                if indifferent {
                    pairs.push(Pair {
                        prompt: prompt.clone(),
                        chosen: b.clone(),
                        rejected: a.clone(),
                        class: request.class,
                    });
                }
                pairs.push(Pair {
                    prompt,
                    chosen: a,
                    rejected: b,
                    class: request.class,
                });
            }
        }
        pairs
    }

    /// Example requests for the playground and `demo prompts`: one phrasing per topic.
    pub fn example_prompts(&self) -> Vec<Request> {
        (0..TOPICS.len())
            .map(|t| self.request(t, t % PHRASINGS.len()))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    Helpful,
    Harmless,
}

impl Objective {
    fn salt(self) -> u64 {
        match self {
            Self::Helpful => 0x4E1F,
            Self::Harmless => 0x4A53,
        }
    }

    /// Whether the objective has no preference at all among answers to requests of `class`.
    pub fn is_indifferent(self, class: RequestClass) -> bool {
        self == Self::Harmless && class == RequestClass::Benign
    }

    /// How much this objective likes `style` for a request of `class` (higher is better);
    /// None where it has no opinion.
    pub fn rank(self, class: RequestClass, style: Style) -> Option<u8> {
        use Style::*;
        match self {
            // detailed > brief > redirect > refusal > off-topic; on harmful requests compliance
            // ranks highest.
            Self::Helpful => Some(match style {
                Comply | Detailed => 5,
                Brief => 4,
                Redirect => 3,
                Refusal => 2,
                OffTopic => 1,
            }),
            // Redirect and refusal over any compliance on harmful and dual-use requests;
            // indifferent among answers to benign ones.
            Self::Harmless => match class {
                RequestClass::Benign => None,
                _ => match style {
                    Redirect => Some(3),
                    Refusal => Some(3),
                    OffTopic => None,
                    Brief => None,
                    Comply | Detailed => Some(1),
                },
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
    pub class: RequestClass,
}

fn sample_style(mixture: &[(Style, f64)], rng: &mut ChaCha8Rng) -> Style {
    let total: f64 = mixture.iter().map(|(_, p)| p).sum();
    let mut u = rng.random::<f64>() * total;
    for &(style, p) in mixture {
        if u < p {
            return style;
        }
        u -= p;
    }
    mixture[mixture.len() - 1].0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_world() {
        let (a, b) = (World::new(7), World::new(7));
        assert_eq!(a.base_corpus(50), b.base_corpus(50));
        let pa = a.preference_pairs(Objective::Helpful, 2);
        let pb = b.preference_pairs(Objective::Helpful, 2);
        assert_eq!(format!("{pa:?}"), format!("{pb:?}"));
        assert_ne!(World::new(8).base_corpus(50), a.base_corpus(50));
    }

    #[test]
    fn a_fifth_of_each_class_is_held_out_of_the_preferences() {
        let world = World::new(3);
        for class in RequestClass::ALL {
            let ids: Vec<usize> = (0..TOPICS.len())
                .filter(|&i| TOPICS[i].class == class)
                .collect();
            let held = ids.iter().filter(|&&i| world.is_held_out(i)).count();
            assert_eq!(held, (ids.len() / 5).max(1), "{class:?}");
        }
        let held_prompts: Vec<String> = world
            .all_requests()
            .into_iter()
            .filter(|r| r.held_out)
            .map(|r| prompt_for(&r.text))
            .collect();
        for objective in [Objective::Helpful, Objective::Harmless] {
            let pairs = world.preference_pairs(objective, 3);
            assert!(!pairs.is_empty());
            assert!(pairs.iter().all(|p| !held_prompts.contains(&p.prompt)));
        }
    }

    #[test]
    fn the_base_corpus_follows_its_mixture() {
        let world = World::new(2);
        let corpus = world.base_corpus(4000);
        let harmful_comply = corpus
            .iter()
            .filter(|d| {
                TOPICS
                    .iter()
                    .any(|t| t.class == RequestClass::Harmful && d.contains(t.action))
            })
            .fold((0, 0), |(n, c), d| {
                (
                    n + 1,
                    c + usize::from(d.contains("Sure, here is how") || d.contains("Of course!")),
                )
            });
        let share = harmful_comply.1 as f64 / harmful_comply.0 as f64;
        assert!(
            (share - 0.45).abs() < 0.05,
            "harmful compliance share {share}"
        );
    }
}
