//! What a client may send over the socket: garbage, cut-short requests,
//! huge headers and hostile paths get a 4xx and change nothing, and idle
//! or half-sent connections do not starve other clients.

use std::io::Write;
use std::net::TcpStream;

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};

use super::{Server, exchange, request};

#[test]
fn garbage_on_the_wire_gets_a_4xx_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::with_one_event(dir.path());
    let mut rng = StdRng::seed_from_u64(0x6a7b);

    for _ in 0..20 {
        let mut noise = vec![0; 1 + (rng.next_u64() % 2_000) as usize];
        rng.fill_bytes(&mut noise);
        if let Some((status, _)) = exchange(server.addr, &noise, true) {
            assert!(
                (400..500).contains(&status),
                "random bytes answered {status}"
            );
        }
    }
    // A body cut short: the connection closes before its declared length.
    let truncated =
        b"POST /db/gates/e HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n[{\"data\": 2}";
    if let Some((status, _)) = exchange(server.addr, truncated, true) {
        assert!(
            (400..500).contains(&status),
            "a truncated body answered {status}"
        );
    }
    let huge_header = format!(
        "GET /db HTTP/1.1\r\nhost: t\r\nx-big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    if let Some((status, _)) = exchange(server.addr, huge_header.as_bytes(), true) {
        assert!(
            (400..500).contains(&status),
            "huge headers answered {status}"
        );
    }
    let nested = format!(
        "{{\"data\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (status, body) = request(server.addr, "POST", "/db/gates/e", &[], nested.as_bytes());
    assert_eq!(
        (status, error_code(&body)),
        (400, "invalid_json".to_owned())
    );
    let (status, body) = request(
        server.addr,
        "POST",
        "/db/gates/e",
        &[],
        b"{\"data\": \"\xc3\x28\"}",
    );
    assert_eq!(
        (status, error_code(&body)),
        (400, "invalid_json".to_owned())
    );
    for path in [
        "/db/..%2F..%2Fetc/e",
        "/db/%00/e",
        "/db/a%2Fb/e",
        "/db/%FF/e",
        "/db/.../e",
    ] {
        let (status, body) = request(server.addr, "POST", path, &[], b"{\"data\": 3}");
        assert_eq!(
            (status, error_code(&body)),
            (400, "invalid_name".to_owned()),
            "{path}"
        );
    }
    for path in [
        "/db/../db/gates/e",
        "/../../etc/passwd",
        "/db/gates/e/../../x",
    ] {
        let (status, _) = request(server.addr, "POST", path, &[], b"{\"data\": 3}");
        assert!((400..500).contains(&status), "{path} answered {status}");
    }

    assert_eq!(
        server.request("GET", "/healthz", "").0,
        200,
        "the node stays up"
    );
    let (_, info) = server.request("GET", "/db/gates", "");
    assert_eq!(info["events"], 1, "nothing was stored");
    assert_eq!(
        server.request("GET", "/db", "").1,
        json!({"databases": ["gates"]})
    );
    assert!(server.terminate().success());
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .map(|value| value["error"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[test]
fn idle_connections_do_not_starve_a_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    // Connections that send nothing, and one that sends half a request.
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(server.addr).expect("connect"))
        .collect();
    let mut slow = TcpStream::connect(server.addr).expect("connect");
    slow.write_all(b"POST /db/x/e HTTP/1.1\r\nhost: t\r\ncontent-le")
        .expect("write");
    assert_eq!(server.request("GET", "/healthz", "").0, 200);
    assert_eq!(server.request("PUT", "/db/busy", "").0, 201);
    // A stopping node waits (up to DRAIN_TIMEOUT_MS) for a request under
    // way, and a half-sent one counts: end the clients first.
    drop(idle);
    drop(slow);
    assert!(server.terminate().success());
}
