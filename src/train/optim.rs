//! AdamW with a state that can be saved and restored, so an interrupted training run resumes
//! exactly (candle-nn's optimiser keeps its moments private).

use std::collections::HashMap;

use candle_core::{Tensor, Var};

use crate::engine::Result;

pub struct AdamW {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Optimiser steps taken (for bias correction).
    pub steps: u64,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
}

impl AdamW {
    pub fn new(vars: &[(String, Var)], lr: f64, weight_decay: f64) -> Result<Self> {
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        Ok(Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            steps: 0,
            first: vars
                .iter()
                .map(|(_, v)| zeros(v))
                .collect::<candle_core::Result<_>>()?,
            second: vars
                .iter()
                .map(|(_, v)| zeros(v))
                .collect::<candle_core::Result<_>>()?,
        })
    }

    /// One update from `grads` (one per var, None where a var got no gradient).
    pub fn step(&mut self, vars: &[(String, Var)], grads: &[Option<Tensor>]) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        let correction1 = 1.0 - self.beta1.powi(t);
        let correction2 = 1.0 - self.beta2.powi(t);
        for (i, ((_, var), grad)) in vars.iter().zip(grads).enumerate() {
            let Some(g) = grad else { continue };
            let m = ((&self.first[i] * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            let v = ((&self.second[i] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let m_hat = (&m / correction1)?;
            let v_hat = (&v / correction2)?;
            let update = (m_hat / (v_hat.sqrt()? + self.eps)?)?;
            let theta = var.as_tensor();
            let decayed = (theta * (1.0 - self.lr * self.weight_decay))?;
            var.set(&(decayed - (update * self.lr)?)?)?;
            self.first[i] = m;
            self.second[i] = v;
        }
        Ok(())
    }

    /// The moments as named tensors, for a checkpoint.
    pub fn state(&self, vars: &[(String, Var)]) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in vars.iter().enumerate() {
            out.insert(format!("m.{name}"), self.first[i].clone());
            out.insert(format!("v.{name}"), self.second[i].clone());
        }
        out
    }

    /// Restore moments saved by [`AdamW::state`]; missing entries stay zero.
    pub fn load_state(
        &mut self,
        vars: &[(String, Var)],
        state: &HashMap<String, Tensor>,
        steps: u64,
    ) {
        for (i, (name, _)) in vars.iter().enumerate() {
            if let Some(m) = state.get(&format!("m.{name}")) {
                self.first[i] = m.clone();
            }
            if let Some(v) = state.get(&format!("v.{name}")) {
                self.second[i] = v.clone();
            }
        }
        self.steps = steps;
    }
}

/// Linear warmup to `lr` over `warmup` steps, then linear decay to 5% of it at `total`.
pub fn learning_rate(lr: f64, warmup: u64, step: u64, total: u64) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let remaining = total.saturating_sub(warmup).max(1);
    lr * (1.0 - (step - warmup) as f64 / remaining as f64).max(0.05)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn minimises_a_quadratic() {
        let x = Var::new(&[3.0f32, -2.0], &Device::Cpu).unwrap();
        let vars = vec![("x".to_string(), x.clone())];
        let mut opt = AdamW::new(&vars, 0.1, 0.0).unwrap();
        for _ in 0..300 {
            let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&vars, &[grads.get(x.as_tensor()).cloned()])
                .unwrap();
        }
        let v: Vec<f32> = x.as_tensor().to_vec1().unwrap();
        assert!(v.iter().all(|x| x.abs() < 0.05), "{v:?}");
    }
}
