//! `--nats` over TLS and with credentials, against real `nats-server` processes
//! configured with them (certificates made here with rcgen, JWTs with nkeys):
//! a user and password, a token, a client certificate, a creds file and the README's
//! permissions each work end to end; a wrong password, a certificate of another
//! CA, plaintext to a TLS port and TLS to a plaintext one are each refused with
//! one clear line in the log, writes `UNAVAILABLE` and health `NOT_SERVING`, and
//! writes come back by themselves once NATS's config is fixed. No secret is ever
//! logged.

mod support;

use base64::Engine;
use perfstats::client::{Client, RetryPolicy};
use perfstats::{Event, PerformanceData};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::nats::{NatsCluster, NodeConfig, reaches_the_stream};
use support::{BinaryServer, announced_url, http, wait_until, within};
use tempfile::TempDir;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How long a server may take to reach the stream, to log why it cannot, or to
/// see a report: a second or two here; 60 s only trips on a real hang.
const DEADLINE: Duration = Duration::from_secs(60);
/// The gRPC service whose health says whether writes are served.
const INGEST_SERVICE: &str = "perfstats.v1.PerformanceStats";
/// The password the NATS servers know for the user `perfstats`.
const PASSWORD: &str = "s3cret-right-password";
/// A password they do not know.
const WRONG_PASSWORD: &str = "s3cret-wrong-password";
/// Failed attempts NATS must have logged before the test counts perfstats's
/// lines: more than one, so that a line per attempt would show.
const ATTEMPTS_SEEN: usize = 3;

/// A CA and what it signed, as files in a temporary directory.
struct Certs {
    dir: TempDir,
}

impl Certs {
    /// `ca.pem`; `node.pem`/`node.key` for 127.0.0.1 (server and client use, for
    /// routes too); `client.pem`/`client.key`; `other-ca.pem`, a CA that signed
    /// nothing here.
    fn make() -> Certs {
        let dir = tempfile::Builder::new()
            .prefix("perfstats-nats-tls-")
            .tempdir()
            .unwrap();
        let (issuer, ca_pem) = ca("perfstats NATS test CA");
        let (_, other_pem) = ca("another CA");
        std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
        std::fs::write(dir.path().join("other-ca.pem"), other_pem).unwrap();
        let both = [
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        leaf(
            &issuer,
            &["127.0.0.1", "localhost"],
            &both,
            &dir.path().join("node"),
        );
        leaf(
            &issuer,
            &[],
            &[ExtendedKeyUsagePurpose::ClientAuth],
            &dir.path().join("client"),
        );
        Certs { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    /// A nats-server `tls {…}` block with the node's certificate; `verify`
    /// requires clients' certificates signed by the CA.
    fn tls_block(&self, verify: bool) -> String {
        format!(
            "tls {{\n  cert_file: {}\n  key_file: {}\n  ca_file: {}\n  verify: {verify}\n  timeout: 2\n}}\n",
            quoted(&self.path("node.pem")),
            quoted(&self.path("node.key")),
            quoted(&self.path("ca.pem")),
        )
    }
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

fn ca(name: &str) -> (CertifiedIssuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let pem = issuer.pem();
    (issuer, pem)
}

/// Writes `BASE.pem` and `BASE.key`: a certificate for `names` signed by `issuer`.
fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    usages: &[ExtendedKeyUsagePurpose],
    base: &Path,
) {
    let mut params = CertificateParams::new(
        names
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "perfstats NATS test");
    params.extended_key_usages = usages.to_vec();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    std::fs::write(base.with_extension("pem"), cert.pem()).unwrap();
    std::fs::write(base.with_extension("key"), key.serialize_pem()).unwrap();
}

/// An `authorization` block with the user `perfstats` and `password`.
fn users(password: &str) -> String {
    format!(
        "authorization {{\n  users = [ {{ user: perfstats, password: {} }} ]\n}}\n",
        quoted(password)
    )
}

/// A `perfstats serve --memory --nats URLS ARGS…` with `envs`, its log (stderr,
/// `RUST_LOG=info`) in a file of `dir`.
struct Perfstats {
    server: BinaryServer,
    log: PathBuf,
}

impl Perfstats {
    fn start(
        urls: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        dir: &Path,
        name: &str,
    ) -> Perfstats {
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_perfstats"));
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--memory",
                "--nats",
                urls,
            ])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap());
        for (var, _) in std::env::vars() {
            if var.starts_with("PERFSTATS_NATS") && var != "PERFSTATS_NATS_SERVER" {
                command.env_remove(var);
            }
        }
        command.envs(envs.iter().copied());
        let mut child = command.spawn().expect("spawn perfstats");
        let url = announced_url(&mut child);
        Perfstats {
            server: BinaryServer { child, url },
            log,
        }
    }

    fn url(&self) -> &str {
        &self.server.url
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line containing `text`, and returns that line.
    async fn logged(&self, text: &str) -> String {
        wait_until(
            DEADLINE,
            &format!("perfstats to log {text:?}"),
            async || self.log().contains(text),
        )
        .await;
        let log = self.log();
        log.lines()
            .find(|line| line.contains(text))
            .unwrap()
            .to_string()
    }

    fn client(&self) -> Client {
        Client::connect_lazy(self.url())
            .unwrap()
            .with_policy(RetryPolicy::never())
    }

    /// Sends a report (ACKed once the stream holds it) and waits until this
    /// server's API shows it.
    async fn report_and_read_back(&self, message: &str) {
        let ack = within(
            DEADLINE,
            "the report's ACK",
            self.client().send_performance_stat(report(message)),
        )
        .await
        .unwrap_or_else(|status| panic!("report refused: {status:?}\n{}", self.log()));
        assert!(ack.seq > 0, "{ack:?}");
        self.shows(message).await;
    }

    /// Waits until this server's API shows a report with `message`.
    async fn shows(&self, message: &str) {
        let url = format!("{}/api/reports", self.url());
        let quoted = format!("\"{message}\"");
        wait_until(DEADLINE, &format!("{url} to show {message}"), async || {
            let response = http().get(&url).send().await.unwrap();
            response.status() == 200 && response.text().await.unwrap().contains(&quoted)
        })
        .await;
    }

    /// Asserts that a write answers UNAVAILABLE naming `why`, that health says
    /// NOT_SERVING, and that reads are served.
    async fn refuses_writes(&self, why: &str) {
        let refused = within(
            DEADLINE,
            "a refused write's answer",
            self.client().send_performance_stat(report("refused")),
        )
        .await
        .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert!(refused.message().contains(why), "{refused:?}");
        assert_eq!(health(self.url()).await, ServingStatus::NotServing);
        let runs = http()
            .get(format!("{}/api/runs", self.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(runs.status(), 200, "reads are served");
    }

    /// Asserts no secret (the passwords, and `more`) reached the log.
    fn logged_no_secret(&self, more: &[&str]) {
        let log = self.log();
        for secret in [PASSWORD, WRONG_PASSWORD].iter().chain(more) {
            assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        }
    }
}

fn report(message: &str) -> PerformanceData {
    PerformanceData::new(0, "node-1", Event::NewBlockReceived, message)
}

async fn health(url: &str) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect_lazy();
    let mut client = HealthClient::new(channel);
    let check = client.check(HealthCheckRequest {
        service: INGEST_SERVICE.into(),
    });
    let answer = within(DEADLINE, "a health check's answer", check)
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(answer.status).unwrap()
}

/// Waits until NATS node 0 has logged `text` at least [`ATTEMPTS_SEEN`] times
/// more than `before` (failed attempts of a client).
async fn attempts_logged(cluster: &NatsCluster, text: &str, before: usize) {
    wait_until(
        DEADLINE,
        &format!("NATS to log {ATTEMPTS_SEEN} more {text:?}"),
        async || cluster.log(0).matches(text).count() >= before + ATTEMPTS_SEEN,
    )
    .await;
}

/// How many lines of `log` contain `text`.
fn lines_with(log: &str, text: &str) -> usize {
    log.lines().filter(|line| line.contains(text)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_a_user_work_and_a_wrong_password_is_one_line_until_nats_is_fixed() {
    let certs = Certs::make();
    let mut cluster = NatsCluster::start_with(
        1,
        NodeConfig {
            top: certs.tls_block(false) + &users(PASSWORD),
            ..NodeConfig::default()
        },
    )
    .await;
    let urls = cluster.urls();
    let ca = certs.path("ca.pem");
    let right = Perfstats::start(
        &urls,
        &["--nats-ca", &ca],
        &[
            ("PERFSTATS_NATS_USER", "perfstats"),
            ("PERFSTATS_NATS_PASSWORD", PASSWORD),
        ],
        certs.dir.path(),
        "right",
    );
    reaches_the_stream(right.url(), DEADLINE).await;
    right.report_and_read_back("over-tls").await;
    right.logged_no_secret(&[]);

    // The wrong password: one line, however many attempts.
    let failed_before = cluster.log(0).matches("authentication error").count();
    let wrong = Perfstats::start(
        &urls,
        &["--nats-ca", &ca, "--nats-user", "perfstats"],
        &[("PERFSTATS_NATS_PASSWORD", WRONG_PASSWORD)],
        certs.dir.path(),
        "wrong",
    );
    let expected =
        "NATS: authorization violation for user perfstats: check --nats-user/--nats-password";
    let line = wrong.logged(expected).await;
    assert!(line.contains("ERROR"), "{line}");
    eprintln!("the refusal's line: {line}");
    wrong.refuses_writes("authorization violation").await;
    attempts_logged(&cluster, "authentication error", failed_before).await;
    assert_eq!(lines_with(&wrong.log(), expected), 1, "{}", wrong.log());
    wrong.logged_no_secret(&[]);

    // NATS's config fixed (and reloaded): writes come back by themselves.
    cluster
        .reload(NodeConfig {
            top: certs.tls_block(false) + &users(WRONG_PASSWORD),
            ..NodeConfig::default()
        })
        .await;
    reaches_the_stream(wrong.url(), DEADLINE).await;
    wait_until(DEADLINE, "health to say SERVING again", async || {
        health(wrong.url()).await == ServingStatus::Serving
    })
    .await;
    wrong.report_and_read_back("after-the-fix").await;
    wrong.logged("the refusal above is resolved").await;
    assert_eq!(lines_with(&wrong.log(), expected), 1, "{}", wrong.log());
    wrong.logged_no_secret(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_works_where_nats_verifies_clients() {
    let certs = Certs::make();
    let cluster = NatsCluster::start_with(
        1,
        NodeConfig {
            top: certs.tls_block(true),
            ..NodeConfig::default()
        },
    )
    .await;
    let urls = cluster.urls();
    let ca = certs.path("ca.pem");
    let (cert, key) = (certs.path("client.pem"), certs.path("client.key"));
    let with = Perfstats::start(
        &urls,
        &["--nats-ca", &ca, "--nats-cert", &cert, "--nats-key", &key],
        &[],
        certs.dir.path(),
        "with-cert",
    );
    reaches_the_stream(with.url(), DEADLINE).await;
    with.report_and_read_back("with-a-client-certificate").await;

    let without = Perfstats::start(&urls, &["--nats-ca", &ca], &[], certs.dir.path(), "without");
    let at = cluster.client_addr(0);
    let expected =
        format!("NATS: {at} requires a client certificate: give --nats-cert and --nats-key");
    eprintln!("no client certificate: {}", without.logged(&expected).await);
    without
        .refuses_writes("requires a client certificate")
        .await;
    attempts_logged(&cluster, "TLS handshake error", 0).await;
    assert_eq!(
        lines_with(&without.log(), &expected),
        1,
        "{}",
        without.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_ca_plaintext_to_tls_and_tls_to_plaintext_are_each_one_clear_line() {
    let certs = Certs::make();
    let cluster = NatsCluster::start_with(
        1,
        NodeConfig {
            top: certs.tls_block(false),
            ..NodeConfig::default()
        },
    )
    .await;
    let urls = cluster.urls();
    let at = cluster.client_addr(0);
    let other = certs.path("other-ca.pem");
    let untrusting = Perfstats::start(
        &urls,
        &["--nats-ca", &other],
        &[],
        certs.dir.path(),
        "other-ca",
    );
    let expected = format!(
        "NATS: TLS certificate of {at} does not verify against --nats-ca {other}: invalid peer certificate"
    );
    eprintln!("another CA: {}", untrusting.logged(&expected).await);
    untrusting.refuses_writes("does not verify").await;

    let plaintext = Perfstats::start(&urls, &[], &[], certs.dir.path(), "plaintext");
    let expected_plain = format!("NATS: {at} requires TLS, and without --nats-ca");
    eprintln!("plaintext: {}", plaintext.logged(&expected_plain).await);
    plaintext.refuses_writes("requires TLS").await;
    let failed = cluster.log(0).matches("TLS handshake error").count();
    attempts_logged(&cluster, "TLS handshake error", failed + ATTEMPTS_SEEN).await;
    assert_eq!(
        lines_with(&untrusting.log(), &expected),
        1,
        "{}",
        untrusting.log()
    );
    assert_eq!(
        lines_with(&plaintext.log(), &expected_plain),
        1,
        "{}",
        plaintext.log()
    );

    // --nats-ca to a NATS server without TLS: refused, never plaintext.
    let plain_cluster = NatsCluster::start(1).await;
    let ca = certs.path("ca.pem");
    let insisting = Perfstats::start(
        &plain_cluster.urls(),
        &["--nats-ca", &ca],
        &[],
        certs.dir.path(),
        "insisting",
    );
    let plain_at = plain_cluster.client_addr(0);
    let line = insisting
        .logged(&format!(
            "NATS: {plain_at} does not offer TLS, and --nats-ca {ca} requires it"
        ))
        .await;
    eprintln!("TLS to plaintext: {line}");
    insisting.refuses_writes("does not offer TLS").await;
}

/// A user JWT and its seed in a creds file, and the operator config that trusts
/// them (memory resolver; an account with JetStream, and a system account).
struct Operator {
    config: String,
    creds: String,
    /// The user's NKey seed (a secret).
    seed: String,
}

fn operator_setup() -> Operator {
    use nkeys::KeyPair;
    let operator = KeyPair::new_operator();
    let system = KeyPair::new_account();
    let account = KeyPair::new_account();
    let user = KeyPair::new_user();
    let limits = serde_json::json!({"subs": -1, "data": -1, "payload": -1, "imports": -1,
        "exports": -1, "wildcards": true, "conn": -1, "leaf": -1});
    let mut jetstream = limits.clone();
    for key in ["mem_storage", "disk_storage", "streams", "consumer"] {
        jetstream[key] = (-1).into();
    }
    let operator_jwt = jwt(
        &operator,
        &operator,
        serde_json::json!({"system_account": system.public_key(), "type": "operator", "version": 2}),
    );
    let system_jwt = jwt(
        &operator,
        &system,
        serde_json::json!({"limits": limits, "type": "account", "version": 2}),
    );
    let account_jwt = jwt(
        &operator,
        &account,
        serde_json::json!({"limits": jetstream, "type": "account", "version": 2}),
    );
    let user_jwt = jwt(
        &account,
        &user,
        serde_json::json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
            "type": "user", "version": 2}),
    );
    let seed = user.seed().unwrap();
    Operator {
        seed: seed.clone(),
        config: format!(
            "operator: {operator_jwt}\nsystem_account: {system}\nresolver: MEMORY\n\
             resolver_preload: {{\n  {system}: {system_jwt}\n  {account}: {account_jwt}\n}}\n",
            system = system.public_key(),
            account = account.public_key(),
        ),
        creds: format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        ),
    }
}

/// A JWT of `subject` signed by `issuer` (ed25519-nkey), with `nats` claims.
fn jwt(issuer: &nkeys::KeyPair, subject: &nkeys::KeyPair, nats: serde_json::Value) -> String {
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": uuid::Uuid::now_v7().simple().to_string().to_uppercase(),
        "iat": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
        "iss": issuer.public_key(),
        "sub": subject.public_key(),
        "name": "perfstats test",
        "nats": nats,
    });
    let payload = encode(claims.to_string().as_bytes());
    let signed = format!("{header}.{payload}");
    let signature = issuer.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", encode(&signature))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creds_file_works_and_a_user_the_operator_does_not_know_is_refused() {
    let known = operator_setup();
    let stranger = operator_setup();
    let cluster = NatsCluster::start_with(
        1,
        NodeConfig {
            top: known.config.clone(),
            ..NodeConfig::default()
        },
    )
    .await;
    let dir = tempfile::Builder::new()
        .prefix("perfstats-nats-creds-")
        .tempdir()
        .unwrap();
    let creds = dir.path().join("perfstats.creds");
    std::fs::write(&creds, &known.creds).unwrap();
    let creds = creds.to_str().unwrap().to_string();
    let with = Perfstats::start(
        &cluster.urls(),
        &["--nats-creds", &creds],
        &[],
        dir.path(),
        "creds",
    );
    reaches_the_stream(with.url(), DEADLINE).await;
    with.report_and_read_back("with-a-creds-file").await;
    with.logged_no_secret(&[&known.seed]);

    let unknown = dir.path().join("stranger.creds");
    std::fs::write(&unknown, &stranger.creds).unwrap();
    let unknown = unknown.to_str().unwrap().to_string();
    let refused = Perfstats::start(
        &cluster.urls(),
        &[],
        &[("PERFSTATS_NATS_CREDS", &unknown)],
        dir.path(),
        "stranger",
    );
    refused
        .logged(&format!(
            "NATS: authorization violation with the credentials of --nats-creds {unknown}"
        ))
        .await;
    refused.refuses_writes("authorization violation").await;
    refused.logged_no_secret(&[&stranger.seed]);
}

/// The README's `PERFSTATS_PERMISSIONS = {…}` block, as it stands.
fn readme_permissions() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("PERFSTATS_PERMISSIONS = {")
        .expect("the README's NATS config has a PERFSTATS_PERMISSIONS block");
    let end = start + readme[start..].find("\n}\n").expect("its closing brace") + 3;
    readme[start..end].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_permissions_suffice_on_a_cluster_with_tls_on_its_routes() {
    let certs = Certs::make();
    let users = "authorization {\n  users = [\n    \
        { user: perfstats-a, password: $PASSWORD_A, permissions: $PERFSTATS_PERMISSIONS }\n    \
        { user: perfstats-b, password: $PASSWORD_B, permissions: $PERFSTATS_PERMISSIONS }\n  ]\n}\n";
    let top = format!(
        "PASSWORD_A: \"{PASSWORD}-a\"\nPASSWORD_B: \"{PASSWORD}-b\"\n{}\n{}{users}",
        readme_permissions(),
        certs.tls_block(false),
    );
    let cluster = NatsCluster::start_with(
        3,
        NodeConfig {
            top,
            cluster: certs.tls_block(true),
            ..NodeConfig::default()
        },
    )
    .await;
    let urls = cluster.urls();
    let ca = certs.path("ca.pem");
    let password_a = format!("{PASSWORD}-a");
    let password_b = format!("{PASSWORD}-b");
    let a = Perfstats::start(
        &urls,
        &["--nats-ca", &ca],
        &[
            ("PERFSTATS_NATS_USER", "perfstats-a"),
            ("PERFSTATS_NATS_PASSWORD", &password_a),
        ],
        certs.dir.path(),
        "a",
    );
    let b = Perfstats::start(
        &urls,
        &["--nats-ca", &ca],
        &[
            ("PERFSTATS_NATS_USER", "perfstats-b"),
            ("PERFSTATS_NATS_PASSWORD", &password_b),
        ],
        certs.dir.path(),
        "b",
    );
    reaches_the_stream(a.url(), DEADLINE).await;
    reaches_the_stream(b.url(), DEADLINE).await;
    a.report_and_read_back("through-a").await;
    b.shows("through-a").await;
    b.report_and_read_back("through-b").await;
    a.shows("through-b").await;
    for server in [&a, &b] {
        let log = server.log();
        assert!(!log.contains("Permissions Violation"), "{log}");
        server.logged_no_secret(&[]);
    }
    // The user may do only that: deleting the stream is refused.
    let outside =
        async_nats::ConnectOptions::with_user_and_password("perfstats-a".into(), password_a)
            .add_root_certificates(ca.clone().into())
            .require_tls(true)
            .connect(cluster.url(0))
            .await
            .unwrap();
    outside
        .publish("$JS.API.STREAM.DELETE.PERFSTATS", "".into())
        .await
        .unwrap();
    outside.flush().await.unwrap();
    let violation = r#"Publish Violation - Subject "$JS.API.STREAM.DELETE.PERFSTATS""#;
    wait_until(
        DEADLINE,
        "NATS to refuse the stream's deletion",
        async || (0..cluster.len()).any(|i| cluster.log(i).contains(violation)),
    )
    .await;
    a.report_and_read_back("still-there").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_works_and_a_wrong_one_is_named() {
    let certs = Certs::make();
    let cluster = NatsCluster::start_with(
        1,
        NodeConfig {
            top: format!("authorization {{\n  token: {}\n}}\n", quoted(PASSWORD)),
            ..NodeConfig::default()
        },
    )
    .await;
    let with = Perfstats::start(
        &cluster.urls(),
        &[],
        &[("PERFSTATS_NATS_TOKEN", PASSWORD)],
        certs.dir.path(),
        "token",
    );
    reaches_the_stream(with.url(), DEADLINE).await;
    with.report_and_read_back("with-a-token").await;
    with.logged_no_secret(&[]);

    let wrong = Perfstats::start(
        &cluster.urls(),
        &[],
        &[("PERFSTATS_NATS_TOKEN", WRONG_PASSWORD)],
        certs.dir.path(),
        "wrong-token",
    );
    wrong
        .logged("NATS: authorization violation with --nats-token: check the token")
        .await;
    wrong.refuses_writes("authorization violation").await;
    wrong.logged_no_secret(&[]);
}
