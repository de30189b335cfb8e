//! genarm: command-line entry point.

use std::process::ExitCode;

use clap::Parser;
use genarm::cli::{Cli, Command, PlayArgs};
use genarm::commands;

fn main() -> ExitCode {
    // Turn off candle's spin-waiting worker pool (quantized products parallelise on rayon's
    // pool instead, see engine/linear.rs) unless the user chose its size.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: `set_var` is sound while no other thread reads the environment; this is
        // main's first statement, before clap, tokio, rayon or candle start any thread.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // clap's message spans several lines (usage, hints); keep the first.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments").trim();
            eprintln!("{first} (see genarm --help)");
            return ExitCode::from(2);
        }
    };
    // A panic anywhere is a bug: reported as one line and a failure exit, never a backtrace
    // dump (threads that catch their own panics report them as errors, see engine::panic).
    genarm::engine::panic::install_hook();
    let result = genarm::engine::panic::catch(|| run(&cli))
        .unwrap_or_else(|panic| Err(anyhow::anyhow!("{panic} (please report this)")));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the outermost message plus its causes, inputs named by their flags.
            let message = genarm::cli_errors::one_line(&e);
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The subcommand, or the playground.
fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Some(Command::Generate(args)) => commands::generate::run(args),
        Some(Command::Score(args)) => commands::score::run(args),
        Some(Command::Bench(args)) => commands::bench::run(args),
        Some(Command::RandomModel(args)) => commands::random_model::run(args),
        Some(Command::TrainArm(args)) => commands::train_arm::run(args),
        Some(Command::TrainLm(args)) => commands::train_lm::run(args),
        Some(Command::TrainTokenizer(args)) => commands::train_lm::run_tokenizer(args),
        Some(Command::Demo(command)) => commands::demo::run(command),
        Some(Command::Sweep(args)) => commands::sweep::run(args),
        Some(Command::Models(args)) => commands::models::run(args),
        Some(Command::Inspect(args)) => commands::inspect::run(args),
        // No subcommand: the playground, on the embedded demo unless --base is given.
        None => play(&cli.play),
    }
}

/// The playground, its flags turned into a model spec and its own settings.
fn play(args: &PlayArgs) -> anyhow::Result<()> {
    if args.max_new_tokens == 0 {
        anyhow::bail!(
            "--max-new-tokens must be at least 1 in the playground (a run of 0 tokens shows nothing)"
        );
    }
    let models = args.models.to_spec()?;
    let options = genarm::tui::PlayOptions {
        max_new_tokens: args.max_new_tokens,
        prompt: args.prompt.clone(),
    };
    genarm::tui::run(&models, &options)
}

/// Output piped into `head` and closed early is not an error worth reporting.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
