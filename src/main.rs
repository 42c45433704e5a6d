//! Parses the command line, runs one command, and turns how it ended into the exit code.

use std::process::ExitCode;

use clap::Parser;
use migrator::exit::Exit;

fn main() -> ExitCode {
    let cli = match migrator::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; a usage error exits 1, never 2 ("changes").
            let _ = e.print();
            let status = if e.use_stderr() {
                Exit::Error
            } else {
                Exit::Success
            };
            return ExitCode::from(status.code());
        }
    };
    migrator::cli::init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            migrator::tell!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Error.code());
        }
    };
    let result = runtime.block_on(migrator::cli::run(cli));
    // A manual cut-over's stdin read may still be pending: do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    let status = match result {
        Ok(status) => status,
        // The reader of stdout left: exit quietly.
        Err(e) if e.is_broken_pipe() => Exit::Success,
        Err(e) => {
            migrator::tell!("error: {e}");
            if let Some(help) = e.help() {
                migrator::tell!("  {help}");
            }
            e.exit()
        }
    };
    ExitCode::from(status.code())
}
