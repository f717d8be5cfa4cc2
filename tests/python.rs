//! The Python example (`examples/python/report.py`): stubs generated from `proto/`
//! with grpcio-tools, one report against a live server. scripts/test.sh installs
//! grpcio and grpcio-tools into target/tools/py; without them this fails.

mod support;

use std::path::PathBuf;
use std::process::Command;

fn python() -> PathBuf {
    support::tools_python("grpcio grpcio-tools")
}

async fn run(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/python/report.py"))
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_reports_an_event() {
    let server = support::spawn_server().await;
    let addr = server.addr.to_string();
    let args = |message: &str| {
        [
            "--addr",
            &addr,
            "--sender",
            "py",
            "--event",
            "EVENT_INITIAL_SYNC_COMPLETED",
            "--message",
            message,
        ]
        .map(str::to_string)
        .to_vec()
    };
    let output = run(args("from python")).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "seq=1 run=run-1 duplicate=false"
    );
    let stored = &server.get_json("/api/reports").await["reports"][0];
    assert_eq!(
        (
            stored["sender"].as_str(),
            stored["event"].as_str(),
            stored["message"].as_str()
        ),
        (
            Some("py"),
            Some("EVENT_INITIAL_SYNC_COMPLETED"),
            Some("from python")
        )
    );
    assert_eq!(stored["report_id"].as_str().unwrap().len(), 36, "a UUID");

    let refused = run(args("")).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("INVALID_ARGUMENT") && stderr.contains("message: must not be empty"),
        "{stderr}"
    );
    server.stop().await;
}
