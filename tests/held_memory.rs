//! Open `ReportStats` calls of tiny reports that never finish (issue 22's first
//! attack, scaled down) hold what their budget says in the server's memory, not
//! five times more, and that memory goes back to the operating system when the
//! clients go away. An honest node is served throughout; nothing of the held calls
//! is stored. Against the real binary, whose RSS is the server's alone.

mod support;

use perfstats::Event;
use perfstats::pb::PerformanceData;
use perfstats::pb::performance_stats_client::PerformanceStatsClient;
use std::time::{Duration, Instant};
use support::BinaryServer;
use tonic::transport::Channel;

const BUDGET_MIB: f64 = 64.0;
const STREAMS: usize = 14;
/// Each about 7 MiB held (~150 bytes a report): eight or nine fit in the budget.
const REPORTS: usize = 50_000;

fn tiny(n: usize) -> PerformanceData {
    PerformanceData {
        time_unix_nano: 1_800_000_000_000_000_000 + n as i64,
        sender: "n".into(),
        event: Event::TransactionReceived as i32,
        message: "m".into(),
        report_id: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_calls_hold_their_budget_and_give_it_back() {
    let budget = (BUDGET_MIB as usize * 1024 * 1024).to_string();
    let server = BinaryServer::start(&["--memory", "--max-stream-text", &budget]);
    let pid = server.child.id();
    let channel = Channel::from_shared(server.url.clone())
        .unwrap()
        .connect_lazy();
    let mut honest = PerformanceStatsClient::new(channel);
    honest.report_stat(tiny(0)).await.unwrap();
    let before = support::rss_mib(pid).0;

    // The attackers, on a runtime of their own so that they can vanish at once.
    let attackers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (mut held, mut refused, mut worst) = (0, 0, Duration::ZERO);
    for _ in 0..STREAMS {
        let url = server.url.clone();
        let (done, sent) = tokio::sync::oneshot::channel();
        attackers.spawn(async move {
            let channel = Channel::from_shared(url).unwrap().connect_lazy();
            let (sender, receiver) = tokio::sync::mpsc::channel(1_024);
            let mut stub = PerformanceStatsClient::new(channel);
            let call = tokio::spawn(async move {
                let reports = tokio_stream::wrappers::ReceiverStream::new(receiver);
                stub.report_stats(reports).await
            });
            for n in 0..REPORTS {
                if sender.send(tiny(n)).await.is_err() {
                    let status = call.await.unwrap().expect_err("refused");
                    let _ = done.send(Some(status.code()));
                    return;
                }
            }
            let _ = done.send(None);
            std::future::pending::<()>().await; // the call stays open
            drop(sender);
        });
        let outcome = support::within(
            Duration::from_secs(60),
            "a held call to send its reports or be refused",
            sent,
        )
        .await
        .unwrap();
        match outcome {
            None => held += 1,
            Some(code) => {
                assert_eq!(code, tonic::Code::ResourceExhausted);
                refused += 1;
            }
        }
        // The honest node, between attackers.
        let call = Instant::now();
        let report = honest.report_stat(tiny(1 + held + refused));
        support::within(Duration::from_secs(30), "an honest ACK", report)
            .await
            .unwrap();
        worst = worst.max(call.elapsed());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (holding, peak) = support::rss_mib(pid);
    let reserved = support::metric(&server.url, None, "perfstats_stream_text_bytes")
        .await
        .unwrap()
        / (1024.0 * 1024.0);
    attackers.shutdown_background();
    // What the allocator gives back, within a few of the server's looks at it.
    let mut after = holding;
    support::wait_until(Duration::from_secs(15), "memory given back", async || {
        after = support::rss_mib(pid).0;
        after < before + 16.0
    })
    .await;
    println!(
        "{held} calls sent in full, {refused} refused while sending; {reserved:.0} MiB reserved; RSS before {before:.0} MiB, holding {holding:.0} MiB \
         (peak {peak:.0}), after {after:.0} MiB; honest ACKs at worst {worst:?}"
    );
    // Calls sent in full may still be refused as the server reads their last
    // reports: what is held is read from the budget itself, full to within a call.
    assert!(refused >= 1, "{held} sent in full, {refused} refused");
    assert!(
        (BUDGET_MIB - 16.0..=BUDGET_MIB).contains(&reserved),
        "{reserved:.1} MiB reserved of {BUDGET_MIB}"
    );
    // The budget, and a quarter of it for what is not counted (the allocator's
    // rounding, h2's buffers). Counting text only, this held 5× the budget.
    assert!(
        peak < before + BUDGET_MIB * 1.25,
        "peak RSS {peak:.0} MiB from {before:.0} MiB with a budget of {BUDGET_MIB} MiB"
    );
    assert!(
        worst < Duration::from_millis(250),
        "an honest ACK took {worst:?}"
    );
    let runs = support::http()
        .get(format!("{}/api/runs", server.url))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(
        runs[0]["reports"],
        1 + STREAMS as u64,
        "only the honest reports are stored: {runs}"
    );
    server.terminate();
}
