//! `genarm random-model`: write a random model folder (for benchmarks and experiments).

use anyhow::Result;

use crate::cli::RandomModelArgs;
use crate::synthetic::{RandomModelSpec, write_random_model};

pub fn run(args: &RandomModelArgs) -> Result<()> {
    let spec = RandomModelSpec {
        arch: args.arch.clone(),
        vocab: args.vocab,
        hidden: args.hidden,
        layers: args.layers,
        heads: args.heads,
        kv_heads: args.kv_heads,
        intermediate: args.intermediate,
        context: args.context,
        seed: args.seed,
        tie_embeddings: args.tie_embeddings,
        ..Default::default()
    };
    write_random_model(&args.out, &spec)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
