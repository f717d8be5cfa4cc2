//! The `perfstats` command: `serve` runs the server; `report`, `tail`, `export`,
//! `import`, `runs`, `compare`, `sweep` and `check` talk to one. Exit codes: 0 done,
//! 1 failed (refused, unreachable, I/O; for `check`, a check failed), 2 bad usage
//! (for `check`, a bad check or an unknown run).
//!
//! This file carries the commands out; `args` is the command line clap parses.

mod args;

use args::{Check, Cli, Command, Report, RunsAction, Serve};
use clap::Parser;
use perfstats::PerformanceData;
use perfstats::client::check::{self, CheckError, CheckFormat, CheckRequest};
use perfstats::client::import;
use perfstats::client::runs;
use perfstats::client::terminal::{self, TailFilter};
use perfstats::labels;
use perfstats::serve::Service;
use std::process::ExitCode;
use tokio::net::TcpListener;

/// `RUST_LOG` (default `info`), with async-nats silenced unless it is named there:
/// it logs every failed reconnect attempt, while perfstats says why NATS refuses it
/// once per reason (`src/cluster/connect`). `RUST_LOG=info,async_nats=debug` brings
/// its lines back.
fn log_filter(rust_log: Option<String>) -> String {
    let filter = rust_log.unwrap_or_else(|| "info".into());
    if filter.contains("async_nats") {
        filter
    } else {
        format!("{filter},async_nats=off")
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(log_filter(
            std::env::var("RUST_LOG").ok(),
        )))
        .with_writer(std::io::stderr)
        .init();
    let outcome = match Cli::parse().command {
        Command::Check(check) => return run_check(check).await,
        command => run(command).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("perfstats: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Carries out one command; the error is the line printed before exiting 1.
async fn run(command: Command) -> Result<(), String> {
    let out = &mut std::io::stdout();
    match command {
        Command::Serve(serve) => run_server(serve).await,
        Command::Report(report) => send_report(report).await,
        Command::Tail(tail) => {
            let filter = TailFilter {
                run: tail.run,
                sender: tail.sender,
                event: tail.event.map(|event| event.as_str_name().to_string()),
                count: tail.count,
            };
            terminal::tail(&tail.remote.http()?, &filter, out).await
        }
        Command::Export(export) => {
            let http = export.remote.http()?;
            terminal::export(&http, export.run.as_deref(), &export.format, out)
                .await
                .map(drop)
        }
        Command::Import(import) => {
            let run = import
                .run
                .or_else(|| import::default_run_name(&import.file));
            let options = import::ImportOptions {
                run: run.ok_or("--run: the file's name gives none: name the run")?,
                labels: labels::parse_all(import.labels.iter().map(String::as_str))
                    .map_err(|error| format!("--label: {error}"))?,
            };
            let (http, grpc) = (import.remote.http()?, import.remote.grpc()?);
            let progress = import::progress_wanted();
            let imported =
                import::import_file(&http, &grpc, &import.file, &options, progress).await?;
            println!("{imported}");
            Ok(())
        }
        Command::Runs(list) => match list.action {
            None => runs::list(&list.remote.http()?, &list.labels, list.format.get(), out).await,
            Some(RunsAction::New {
                remote,
                name,
                labels,
                format,
            }) => runs::start(&remote.http()?, &name, &labels, format.get(), out).await,
            Some(RunsAction::Label {
                remote,
                run,
                labels,
                replace,
                format,
            }) => runs::label(&remote.http()?, &run, &labels, replace, format.get(), out).await,
        },
        Command::Sweep(sweep) => {
            let format = match sweep.format.as_str() {
                "json" => perfstats::client::sweep::SweepFormat::Json,
                "csv" => perfstats::client::sweep::SweepFormat::Csv,
                _ => perfstats::client::sweep::SweepFormat::Table,
            };
            let http = sweep.remote.http()?;
            perfstats::client::sweep::sweep(&http, &sweep.by, &sweep.labels, format, out).await
        }
        Command::Compare(compare) => {
            let format = match compare.format.as_str() {
                "json" => terminal::CompareFormat::Json,
                _ => terminal::CompareFormat::Table,
            };
            let http = compare.remote.http()?;
            terminal::compare(&http, &compare.a, &compare.b, format, out).await
        }
        Command::Check(_) => unreachable!("main runs check, for its own exit codes"),
    }
}

/// `check`: exits 0 when every check passed, 1 when one failed (or the server
/// could not answer), 2 for a bad check or an unknown run.
async fn run_check(check: Check) -> ExitCode {
    let request = CheckRequest {
        run: check.run,
        baseline: check.baseline,
        expect: check.expect,
        max_regression: check.max_regression,
    };
    let format = match check.format.as_str() {
        "json" => CheckFormat::Json,
        _ => CheckFormat::Table,
    };
    let outcome = match check.remote.http() {
        Ok(http) => {
            let junit = check.junit.as_deref();
            check::check(&http, &request, format, junit, &mut std::io::stdout()).await
        }
        Err(message) => Err(CheckError {
            exit_code: 1,
            message,
        }),
    };
    match outcome {
        Ok(passed) => ExitCode::from(u8::from(!passed)),
        Err(error) => {
            eprintln!("perfstats: {}", error.message);
            ExitCode::from(error.exit_code)
        }
    }
}

/// `serve`: the library assembles the server; this binds and waits for a signal.
async fn run_server(serve: Serve) -> Result<(), String> {
    let listen = serve.listen;
    let service = Service::open(serve.into_config()?).await?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|error| format!("cannot listen on {listen}: {error}"))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    println!(
        "perfstats listening on {}://{address} (run {:?})",
        service.scheme(),
        service.current_run().name
    );
    service.run(listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

async fn send_report(report: Report) -> Result<(), String> {
    let client = report.remote.grpc()?;
    let data = PerformanceData::new(report.time, report.sender, report.event, report.message);
    let ack = client
        .send_performance_stat_with_retries(data)
        .await
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?;
    println!(
        "seq={} run={} duplicate={}",
        ack.seq, ack.run, ack.duplicate
    );
    Ok(())
}
