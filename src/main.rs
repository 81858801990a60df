//! The `huelab` command: runs and checks `.rhai` experiment scripts.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use huelab::script::{ScriptError, ScriptRunner};

#[derive(Parser)]
#[command(name = "huelab", version, about = "Activation-hue experiments on CNNs, driven by Rhai scripts")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an experiment script; arguments after it are `key=value` pairs the script reads with `arg`.
    Run {
        /// The `.rhai` script.
        script: PathBuf,
        /// Script arguments, e.g. `epochs=30 name=long`.
        #[arg(value_name = "KEY=VALUE")]
        args: Vec<String>,
    },
    /// Compile a script without running it.
    Check {
        /// The `.rhai` script.
        script: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run { script, args } => parse_args(&args).and_then(|args| run(script, args)),
        Command::Check { script } => ScriptRunner::open(&script, BTreeMap::new()).and_then(|r| r.check()).map(|_| {
            println!("{}: ok", script.display());
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(script: PathBuf, args: BTreeMap<String, String>) -> Result<(), ScriptError> {
    let runner = ScriptRunner::open(&script, args)?;
    runner.run()?;
    let unread = runner.unread_args();
    if !unread.is_empty() {
        eprintln!(
            "warning: {}: argument(s) {} were given but the script never read them (typo?)",
            script.display(),
            unread.join(", ")
        );
    }
    Ok(())
}

fn parse_args(args: &[String]) -> Result<BTreeMap<String, String>, ScriptError> {
    let mut parsed = BTreeMap::new();
    for arg in args {
        let Some((key, value)) = arg.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(ScriptError {
                file: "command line".into(),
                position: None,
                message: format!("argument '{arg}' is not of the form key=value"),
            });
        };
        if parsed.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(ScriptError { file: "command line".into(), position: None, message: format!("argument '{key}' is given twice") });
        }
    }
    Ok(parsed)
}
