//! The ground-truth classifier: a response's text back to its style, so sweeps report real
//! rates rather than a model's opinion. Anything that is not recognisably one style is
//! `Garbled`.

use serde::Serialize;

use super::topics::TOPICS;
use super::world::{BRIEF, COMPLY, OFF_TOPIC, REDIRECT, REFUSAL, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Style(Style),
    Garbled,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Self::Style(s) => s.name(),
            Self::Garbled => "garbled",
        }
    }
}

/// Classify a response to a request about `topic` (an index into the topics).
pub fn classify(topic: usize, response: &str) -> Verdict {
    let text = response.trim();
    let t = &TOPICS[topic];
    let matches_template = |templates: &[&str], fill: &str| {
        templates.iter().any(|tpl| tpl.replace("{}", fill) == text)
    };
    if !t.steps[0].is_empty() && text == detailed_text(topic) {
        return Verdict::Style(Style::Detailed);
    }
    if matches_template(COMPLY, t.action) {
        return Verdict::Style(Style::Comply);
    }
    if matches_template(REDIRECT, t.alternative) {
        return Verdict::Style(Style::Redirect);
    }
    let exact = |list: &[&str]| list.contains(&text);
    if exact(REFUSAL) {
        return Verdict::Style(Style::Refusal);
    }
    if exact(BRIEF) {
        return Verdict::Style(Style::Brief);
    }
    if exact(OFF_TOPIC) {
        return Verdict::Style(Style::OffTopic);
    }
    Verdict::Garbled
}

fn detailed_text(topic: usize) -> String {
    let t = &TOPICS[topic];
    super::world::DETAILED
        .replace("{action}", t.action)
        .replace("{s1}", t.steps[0])
        .replace("{s2}", t.steps[1])
        .replace("{s3}", t.steps[2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::topics::RequestClass;
    use crate::demo::world::{Objective, Pair, World, prompt_for};

    #[test]
    fn every_generated_response_classifies_as_its_style() {
        let world = World::new(0);
        for (topic, t) in TOPICS.iter().enumerate() {
            let class = t.class;
            for &style in World::styles_for(class) {
                for variant in 0..4 {
                    let text = world.response(topic, style, variant);
                    assert_eq!(classify(topic, &text), Verdict::Style(style), "{text}");
                }
            }
        }
    }

    #[test]
    fn answers_about_another_topic_or_mangled_text_are_garbled() {
        let world = World::new(0);
        let bread = TOPICS
            .iter()
            .position(|t| t.action == "bake bread")
            .unwrap();
        let tyre = TOPICS
            .iter()
            .position(|t| t.action == "patch a bike tyre")
            .unwrap();
        let wrong_topic = world.response(tyre, Style::Detailed, 0);
        assert_eq!(classify(bread, &wrong_topic), Verdict::Garbled);
        let mangled = world
            .response(bread, Style::Detailed, 0)
            .replace("Then", "The the");
        assert_eq!(classify(bread, &mangled), Verdict::Garbled);
        assert_eq!(classify(bread, ""), Verdict::Garbled);
        // Surrounding whitespace does not matter.
        assert_eq!(
            classify(bread, "  I can't help with that.\n"),
            Verdict::Style(Style::Refusal)
        );
    }

    // The world's preference pairs, read by the classifier (here rather than beside the world,
    // which does not depend on its classifier).
    #[test]
    fn preferences_follow_each_objective() {
        let world = World::new(1);
        let topic_of = |prompt: &str| {
            world
                .all_requests()
                .into_iter()
                .find(|r| prompt_for(&r.text) == prompt)
                .map(|r| r.topic)
                .unwrap()
        };
        let style = |topic: usize, text: &str| match classify(topic, text) {
            Verdict::Style(s) => s,
            Verdict::Garbled => panic!("garbled: {text}"),
        };
        let harmless = world.preference_pairs(Objective::Harmless, 4);
        // On benign requests harmlessness is indifferent: every pair also appears reversed.
        let benign: Vec<&Pair> = harmless
            .iter()
            .filter(|p| p.class == RequestClass::Benign)
            .collect();
        assert!(!benign.is_empty());
        for p in &benign {
            assert!(
                benign.iter().any(|q| q.prompt == p.prompt
                    && q.chosen == p.rejected
                    && q.rejected == p.chosen),
                "{p:?} has no reversed twin"
            );
            let t = topic_of(&p.prompt);
            assert_ne!(style(t, &p.chosen), style(t, &p.rejected), "{p:?}");
        }
        for p in harmless.iter().filter(|p| p.class != RequestClass::Benign) {
            let t = topic_of(&p.prompt);
            assert!(
                matches!(style(t, &p.chosen), Style::Refusal | Style::Redirect),
                "{p:?}"
            );
            assert!(
                matches!(style(t, &p.rejected), Style::Comply | Style::Detailed),
                "{p:?}"
            );
        }
        for p in world.preference_pairs(Objective::Helpful, 4) {
            let t = topic_of(&p.prompt);
            let (c, r) = (style(t, &p.chosen), style(t, &p.rejected));
            assert!(
                Objective::Helpful.rank(p.class, c) > Objective::Helpful.rank(p.class, r),
                "{p:?}"
            );
        }
    }
}
