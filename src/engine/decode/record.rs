//! The per-token record of `genarm generate --json` / `genarm score --json` (see docs/record-contract.md),
//! and its construction from one guided step.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::engine::decode::detok::IncrementalDecoder;
use crate::engine::decode::guidance::GuidedStep;
use crate::engine::error::Result;
use crate::engine::formats::tokenizer::ModelTokenizer;
use crate::engine::remote::Candidates;

/// One ARM's part in a token's score.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmTerm {
    pub name: String,
    /// log_softmax of the ARM's raw logits at this token.
    pub logprob: f32,
    pub weight: f32,
    /// weight × logprob.
    pub contribution: f32,
}

/// A token that could have been chosen at this position.
#[derive(Debug, Clone, PartialEq)]
pub struct Alternative {
    pub token_id: u32,
    pub text: String,
    pub base_logprob: f32,
    pub guided_logprob: f32,
    /// (ARM name, ARM log-prob), in ARM order.
    pub arms: Vec<(String, f32)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub index: usize,
    pub token_id: u32,
    pub text: String,
    pub base_logprob: f32,
    pub arms: Vec<ArmTerm>,
    pub guided_logprob: f32,
    pub top: Vec<Alternative>,
    /// Rank (0 = first) under the base model and under guidance; for the playground, not JSON.
    pub base_rank: usize,
    pub guided_rank: usize,
    /// A served base's candidate set at this position (`candidates` and `exact` in JSON).
    pub candidates: Option<Candidates>,
}

impl TokenRecord {
    /// Build the record of `token` at generated position `index`. `decoder` is the stream
    /// decoder *before* this token; alternatives are decoded from clones of it so their text is
    /// exactly what they would have added.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        step: &GuidedStep,
        arm_names: &[String],
        index: usize,
        token: u32,
        text: String,
        decoder: &IncrementalDecoder,
        tokenizer: &ModelTokenizer,
        top_alternatives: usize,
    ) -> Result<Self> {
        let arms = arm_names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let logprob = step.arm_logprob(i, token);
                let weight = step.weight(i);
                ArmTerm {
                    name: name.clone(),
                    logprob,
                    weight,
                    contribution: weight * logprob,
                }
            })
            .collect();
        let mut top = Vec::with_capacity(top_alternatives.min(step.vocab_len()));
        for alt in step.top(top_alternatives) {
            let alt_text = if alt == token {
                text.clone()
            } else {
                decoder.clone().step(tokenizer, alt)?
            };
            top.push(Alternative {
                token_id: alt,
                text: alt_text,
                base_logprob: step.base_logprob(alt),
                guided_logprob: step.guided_logprob(alt),
                arms: arm_names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.clone(), step.arm_logprob(i, alt)))
                    .collect(),
            });
        }
        let (base_rank, guided_rank) = step.ranks(token);
        Ok(Self {
            index,
            token_id: token,
            text,
            base_logprob: step.base_logprob(token),
            arms,
            guided_logprob: step.guided_logprob(token),
            top,
            base_rank,
            guided_rank,
            candidates: step.candidates(),
        })
    }
}

impl Serialize for TokenRecord {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Term {
            logprob: f32,
            weight: f32,
            contribution: f32,
        }
        struct Arms<'a>(&'a [ArmTerm]);
        impl Serialize for Arms<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|a| {
                    (
                        &a.name,
                        Term {
                            logprob: a.logprob,
                            weight: a.weight,
                            contribution: a.contribution,
                        },
                    )
                }))
            }
        }
        let mut m = s.serialize_map(Some(8))?;
        m.serialize_entry("type", "token")?;
        m.serialize_entry("index", &self.index)?;
        m.serialize_entry("token_id", &self.token_id)?;
        m.serialize_entry("text", &self.text)?;
        m.serialize_entry("base_logprob", &self.base_logprob)?;
        m.serialize_entry("arms", &Arms(&self.arms))?;
        m.serialize_entry("guided_logprob", &self.guided_logprob)?;
        m.serialize_entry("top", &self.top)?;
        if let Some(candidates) = self.candidates {
            m.serialize_entry("candidates", &candidates.count)?;
            m.serialize_entry("exact", &candidates.exact)?;
        }
        m.end()
    }
}

impl Serialize for Alternative {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        struct Arms<'a>(&'a [(String, f32)]);
        impl Serialize for Arms<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(n, v)| (n, v)))
            }
        }
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("token_id", &self.token_id)?;
        m.serialize_entry("text", &self.text)?;
        m.serialize_entry("base_logprob", &self.base_logprob)?;
        m.serialize_entry("guided_logprob", &self.guided_logprob)?;
        m.serialize_entry("arms", &Arms(&self.arms))?;
        m.end()
    }
}
