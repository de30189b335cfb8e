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
    use crate::demo::world::World;

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
}
