//! Thin entry point: parse, resolve, run, map the outcome or error to the exit code (0 pass, 1 gate failed,
//! 2 usage/scenario/runtime error, 3 nothing valid measured or the report not written, 128+n stopped by signal n).
#![allow(clippy::print_stdout, clippy::print_stderr)]
// Functions stay under 120 lines (clippy.toml); tests may be longer.
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

use std::process::ExitCode;

use clap::Parser;

use run_load_test::app::{self, Outcome};
use run_load_test::cli::{self, Cli, Command, CompareArgs, ReportArgs};
use run_load_test::config::{self, GateOutputs, RunConfig, TryConfig};
use run_load_test::scenario;
use run_load_test::{redact, report};

fn main() -> ExitCode {
    // A password in a URL argument (`--target`, `--pushgateway`) is masked from the first message on, usage
    // errors included.
    let url_secrets: Vec<String> = std::env::args().flat_map(|a| redact::url_secrets(&a)).collect();
    let masked = !url_secrets.is_empty();
    redact::install(url_secrets);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if let Some(line) = cli::value_error(&e) {
                report::print_error(&line);
                return ExitCode::from(2);
            }
            if !masked {
                e.exit();
            }
            let text = e.render().to_string();
            if e.use_stderr() {
                report::print_note(text.trim_end());
            } else {
                report::print_out(&text);
            }
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match dispatch(cli) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            report::print_error(&format!("{e:#}"));
            ExitCode::from(2)
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::List(a) => {
            let rows = app::list(&a.scenarios.dir)?;
            report::print_out(&report::render_list(&rows));
            Ok(Outcome::Passed)
        }
        Command::Run(args) => {
            // Before the scenario and its data files are read: a signal during setup stops the run, with a report.
            app::handle_signals()?;
            let cfg = RunConfig::resolve(*args)?;
            Ok(app::run(cfg)?.1)
        }
        Command::Try(a) => Ok(app::try_scenario(TryConfig::resolve(a)?)?),
        Command::Mock(a) => {
            let addr = format!("{}:{}", a.host, a.port);
            let addr = addr.parse().map_err(|_| anyhow::anyhow!("--host: `{}` is not an IP address", a.host))?;
            app::serve_mock(config::mock_from_args(a)?, addr)?;
            Ok(Outcome::Passed)
        }
        Command::Compare(a) => {
            let CompareArgs { baseline, current, scenario, junit, summary_md, quiet, on_inconclusive, scenarios } = a;
            let rules = scenario.map(|s| scenario::locate_scenario(&s, &scenarios.dir)).transpose()?;
            let outputs =
                GateOutputs { baseline: Some(baseline), on_inconclusive, save_baseline: None, junit, summary_md };
            Ok(app::compare(&current, rules.as_deref(), &outputs, quiet)?)
        }
        Command::Report(a) => {
            let ReportArgs { result, formats, out } = a;
            let formats = config::report_formats(&formats);
            app::rerender(&result, &formats, out.as_deref())?;
            Ok(Outcome::Passed)
        }
        Command::Render(cmd) => {
            report::print_out(&app::render(cmd)?);
            Ok(Outcome::Passed)
        }
        Command::Merge(a) => app::merge_shards(*a),
        Command::Schema => {
            report::print_out(&run_load_test::result::json_schema());
            Ok(Outcome::Passed)
        }
    }
}
