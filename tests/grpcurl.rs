//! The real grpcurl against server reflection: what non-Rust tools see.
//! `scripts/test.sh` installs grpcurl into `target/tools/venv`; without it this fails.

mod support;

use std::process::Command;

use support::grpcurl;

async fn run(args: Vec<String>) -> (bool, String, String) {
    let output =
        tokio::task::spawn_blocking(move || Command::new(grpcurl()).args(args).output().unwrap())
            .await
            .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| arg.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_describes_reports_and_checks_health() {
    let server = support::spawn_server().await;
    let addr = server.addr.to_string();

    let (ok, services, stderr) = run(args(&["-plaintext", &addr, "list"])).await;
    assert!(ok, "{stderr}");
    for service in [
        "perfstats.v1.PerformanceStats",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(
            services.lines().any(|line| line == service),
            "{service} in {services}"
        );
    }

    let (ok, description, stderr) = run(args(&[
        "-plaintext",
        &addr,
        "describe",
        "perfstats.v1.PerformanceStats",
    ]))
    .await;
    assert!(ok, "{stderr}");
    assert!(
        description.contains(
            "rpc ReportStat ( .perfstats.v1.PerformanceData ) returns ( .perfstats.v1.Ack )"
        ),
        "{description}"
    );
    let (ok, event, _) = run(args(&[
        "-plaintext",
        &addr,
        "describe",
        "perfstats.v1.Event",
    ]))
    .await;
    assert!(
        ok && event.contains("EVENT_NEW_BLOCK_RECEIVED = 83;"),
        "{event}"
    );

    let body = r#"{"sender": "1f", "event": "EVENT_NEW_BLOCK_RECEIVED", "message": "from grpcurl", "report_id": "grpcurl-1"}"#;
    let (ok, ack, stderr) = run(args(&[
        "-plaintext",
        "-d",
        body,
        &addr,
        "perfstats.v1.PerformanceStats/ReportStat",
    ]))
    .await;
    assert!(ok, "{stderr}");
    let ack: serde_json::Value = serde_json::from_str(&ack).unwrap();
    assert_eq!(ack["seq"], "1");
    assert_eq!(ack["run"], "run-1");
    let stored = server.get_json("/api/reports").await;
    assert_eq!(stored["reports"][0]["message"], "from grpcurl");
    assert_eq!(stored["reports"][0]["event"], "EVENT_NEW_BLOCK_RECEIVED");
    assert_eq!(stored["reports"][0]["report_id"], "grpcurl-1");

    let bad = r#"{"sender": "", "event": "EVENT_NEW_BLOCK_RECEIVED", "message": "m"}"#;
    let (ok, _, stderr) = run(args(&[
        "-plaintext",
        "-d",
        bad,
        &addr,
        "perfstats.v1.PerformanceStats/ReportStat",
    ]))
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("InvalidArgument") && stderr.contains("sender: must not be empty"),
        "{stderr}"
    );

    let (ok, health, stderr) = run(args(&[
        "-plaintext",
        "-d",
        r#"{"service": "perfstats.v1.PerformanceStats"}"#,
        &addr,
        "grpc.health.v1.Health/Check",
    ]))
    .await;
    assert!(ok, "{stderr}");
    assert!(health.contains("\"SERVING\""), "{health}");
    server.stop().await;
}
