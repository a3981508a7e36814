//! The dashboard in a real browser: runs `tests/browser/dashboard.py`
//! (Python playwright driving Debian's headless chromium) against the
//! `laterbase` binary, and fails, never skips, when either is missing.
//! Its screenshots go to `browser/` in the target directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The playwright `.ci/run` installs.
const PLAYWRIGHT: &str = "playwright==1.65.2";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long the whole script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

fn missing(what: &str, install: &str) -> ! {
    panic!(
        "the browser test needs {what}, which is missing: install it with `{install}` \
         (`.ci/run` does so on CI)"
    );
}

/// Checks that python3 and its playwright, and chromium, are installed.
fn check_tools() {
    if !Path::new(CHROMIUM).exists() {
        missing(CHROMIUM, "apt-get install -y chromium");
    }
    let playwright = Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match playwright {
        Ok(status) if status.success() => {}
        Ok(_) => missing(
            "Python playwright",
            &format!("python3 -m pip install {PLAYWRIGHT}"),
        ),
        Err(_) => missing("python3", "apt-get install -y python3 python3-pip"),
    }
}

/// Reads a child's pipe to its end on a thread of its own.
fn read_all<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

#[test]
fn the_dashboard_shows_a_node_and_its_peer_in_a_real_browser() {
    check_tools();
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_laterbase"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/dashboard.py");
    // target/<profile>/laterbase → target/browser
    let out = binary
        .parent()
        .and_then(Path::parent)
        .expect("the target directory")
        .join("browser");
    // Screenshots of an earlier run must not pass for this one's.
    let _ = std::fs::remove_dir_all(&out);
    let mut child = Command::new("python3")
        .arg(&script)
        .arg("--bin")
        .arg(&binary)
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (stdout, stderr) = (read_all(stdout), read_all(stderr));
    let (done, exited) = mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    let status = match exited.recv_timeout(SCRIPT_TIMEOUT) {
        Ok(status) => status.expect("wait for python3"),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!(
                "the browser test took more than {} s",
                SCRIPT_TIMEOUT.as_secs()
            );
        }
    };
    let (stdout, stderr) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        status.success(),
        "{} failed ({status}):\n{stdout}\n{stderr}",
        script.display()
    );
    assert!(stdout.contains("dashboard: 1 passed, 0 failed"), "{stdout}");
    for suffix in ["ok", "failing", "recovered"] {
        for width in ["laptop", "phone"] {
            let shot = out.join(format!("dashboard-{suffix}-{width}.png"));
            assert!(shot.exists(), "{} was not saved", shot.display());
        }
    }
}
