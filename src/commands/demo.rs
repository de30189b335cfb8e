//! `genarm demo prompts` and `genarm demo rebuild`.

use anyhow::Result;

use crate::cli::{DemoCommand, DemoRebuildArgs};
use crate::demo::build::{RebuildSettings, rebuild};
use crate::demo::world::World;

/// The seed the shipped demo was built with.
pub const DEMO_SEED: u64 = 0;

pub fn run(command: &DemoCommand) -> Result<()> {
    match command {
        DemoCommand::Prompts { json } => prompts(*json),
        DemoCommand::Rebuild(args) => run_rebuild(args),
        DemoCommand::Export { out, seed } => {
            let settings = RebuildSettings {
                seed: *seed,
                ..Default::default()
            };
            crate::demo::build::export_data(&World::new(*seed), &settings, out)?;
            println!(
                "wrote corpus.jsonl, helpful.jsonl and harmless.jsonl to {}",
                out.display()
            );
            Ok(())
        }
    }
}

fn prompts(json: bool) -> Result<()> {
    let world = World::new(DEMO_SEED);
    for request in world.example_prompts() {
        if json {
            println!("{}", serde_json::to_string(&request)?);
        } else {
            let held = if request.held_out { "held-out" } else { "" };
            println!("{:<9} {:<9} {}", request.class.name(), held, request.text);
        }
    }
    Ok(())
}

fn run_rebuild(args: &DemoRebuildArgs) -> Result<()> {
    let settings = RebuildSettings {
        out: args.out.clone(),
        seed: args.seed,
        corpus_documents: args.corpus_documents,
        base_epochs: args.base_epochs,
        helpful_epochs: args.helpful_epochs,
        harmless_epochs: args.harmless_epochs,
        reuse_base: args.reuse_base,
        ..Default::default()
    };
    let times = rebuild(&settings)?;
    let total: f64 = times.stages.iter().map(|(_, s)| s).sum();
    println!(
        "rebuilt the demo into {} in {total:.0} s:",
        args.out.display()
    );
    for (stage, secs) in &times.stages {
        println!("  {stage:<13} {secs:7.1} s");
    }
    Ok(())
}
