//! Parses the command line, runs one command, and maps its outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = migrator::cli::Cli::parse();
    migrator::cli::init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            migrator::tell!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(migrator::cli::run(cli));
    // A manual cut-over's stdin read may still be pending: do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => ExitCode::from(code),
        // The reader of stdout left: exit quietly.
        Err(e) if e.is_broken_pipe() => ExitCode::from(0),
        Err(e) => {
            migrator::tell!("error: {e}");
            if let Some(help) = e.help() {
                migrator::tell!("  {help}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
