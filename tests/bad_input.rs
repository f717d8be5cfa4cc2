//! Bad input of every kind: the server refuses it clearly, keeps serving, and
//! nothing stored changes.

mod support;

use bytes_codec::RawCodec;
use perfstats::{Event, PerformanceData};
use rand::RngCore;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;

/// A gRPC codec that sends the given bytes as the message, protobuf or not.
mod bytes_codec {
    use tonic::Status;
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    #[derive(Default)]
    pub struct RawCodec;
    pub struct Raw;

    impl Codec for RawCodec {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = Raw;
        type Decoder = Raw;
        fn encoder(&mut self) -> Raw {
            Raw
        }
        fn decoder(&mut self) -> Raw {
            Raw
        }
    }

    impl Encoder for Raw {
        type Item = Vec<u8>;
        type Error = Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            bytes::BufMut::put_slice(dst, &item);
            Ok(())
        }
    }

    impl Decoder for Raw {
        type Item = Vec<u8>;
        type Error = Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
            let mut out = vec![0; bytes::Buf::remaining(src)];
            bytes::Buf::copy_to_slice(src, &mut out);
            Ok(Some(out))
        }
    }
}

async fn raw_call(server: &support::TestServer, payload: Vec<u8>) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(payload),
        "/perfstats.v1.PerformanceStats/ReportStat".parse().unwrap(),
        RawCodec,
    )
    .await
    .unwrap_err()
}

/// Sends `bytes` on a fresh connection and reads until the server closes it (or
/// a second passes).
async fn send_raw(server: &support::TestServer, bytes: &[u8]) {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let mut sink = vec![0; 64 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

async fn still_serving(server: &support::TestServer, stored_before: u64) {
    let ack = server
        .client()
        .send_performance_stat(PerformanceData::new(
            0,
            "ok",
            Event::NewBlockReceived,
            "still here",
        ))
        .await
        .expect("the server still serves");
    assert_eq!(ack.seq, stored_before + 1, "nothing else was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_wire_changes_nothing() {
    let server = support::spawn_server().await;
    let mut noise = vec![0u8; 64 * 1024];
    rand::rng().fill_bytes(&mut noise);
    send_raw(&server, &noise).await;
    let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface.extend_from_slice(&noise[..4096]);
    send_raw(&server, &preface).await;
    send_raw(
        &server,
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
    )
    .await;
    send_raw(
        &server,
        b"POST /send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    )
    .await;
    still_serving(&server, 0).await;
    server.stop().await;
}

#[tokio::test]
async fn grpc_payloads_that_are_not_reports_are_refused() {
    let server = support::spawn_server().await;
    let status = raw_call(&server, vec![0xff; 64]).await;
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(status.message().contains("decode"), "{}", status.message());

    // The README promises OUT_OF_RANGE: not RESOURCE_EXHAUSTED, which clients retry.
    let oversized = raw_call(&server, vec![0x22; 100 * 1024]).await;
    assert_eq!(oversized.code(), Code::OutOfRange, "{oversized:?}");
    assert!(
        !perfstats::client::is_retryable(&oversized),
        "never retried"
    );
    assert!(
        oversized.message().contains("too large"),
        "{}",
        oversized.message()
    );

    // Field 3 (event) as an unknown number: valid protobuf, refused by validation.
    let unknown_event = vec![0x12, 0x02, b'1', b'f', 0x18, 0xe7, 0x07, 0x22, 0x01, b'm'];
    let status = raw_call(&server, unknown_event).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "event: must be a defined event from 71 to 87 (got 999)"
    );
    still_serving(&server, 0).await;
    server.stop().await;
}

#[tokio::test]
async fn legacy_bodies_too_large_or_not_utf8_are_refused() {
    let server = support::spawn_server().await;
    let http = reqwest::Client::new();
    let huge = format!(
        "time=1&sender=a&eventtype=83&message={}",
        "x".repeat(10 << 20)
    );
    let response = http
        .post(format!("{}/send", server.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let response = http
        .post(format!("{}/send", server.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(b"time=1&sender=\xff\xfe&eventtype=83&message=m".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.text().await.unwrap(),
        "sender: must be valid UTF-8"
    );
    still_serving(&server, 0).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_do_not_stop_others() {
    let server = support::spawn_server().await;
    let mut idle = Vec::new();
    for i in 0..1_000 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        if i % 2 == 0 {
            // Half say hello over HTTP/2 and then nothing.
            stream
                .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                .await
                .unwrap();
        }
        idle.push(stream);
    }
    let client = server.client();
    for i in 0..100 {
        let ack = client
            .send_performance_stat(PerformanceData::new(
                0,
                "busy",
                Event::TransactionReceived,
                format!("{i}"),
            ))
            .await
            .unwrap();
        assert_eq!(ack.seq, i + 1);
    }
    drop(idle);
    server.stop().await;
}
