//! Runs an external program (`update-ca-certificates`) with a deadline,
//! collecting its output.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use wait_timeout::ChildExt;

use crate::error::{Result, SystemError};

/// How long `update-ca-certificates` may take. With the ca-certificates-java
/// hook it starts a JVM and rewrites the keystore: seconds, not minutes.
pub(crate) const TOOL_DEADLINE: Duration = Duration::from_secs(180);

/// At most this much of each output stream is kept.
const OUTPUT_LIMIT: u64 = 64 << 10;

/// Runs `tool args…` with stdin closed; returns its standard output.
pub(crate) fn run(tool: &Path, args: &[String], deadline: Duration) -> Result<String> {
    let fail = |reason: String| SystemError::Tool {
        tool: tool.into(),
        args: args.join(" "),
        reason,
    };
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}")))?;
    // Drain both pipes while waiting, so a chatty hook never blocks on a
    // full pipe; whatever exceeds the limit is read and dropped.
    let drain = |stream: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut kept = Vec::new();
            if let Some(mut s) = stream {
                let _ = (&mut s).take(OUTPUT_LIMIT).read_to_end(&mut kept);
                let _ = std::io::copy(&mut s, &mut std::io::sink());
            }
            String::from_utf8_lossy(&kept).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let status = match child.wait_timeout(deadline) {
        Ok(Some(status)) => status,
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!(
                "did not finish within {} s",
                deadline.as_secs()
            )));
        }
        Err(e) => return Err(fail(format!("cannot wait: {e}"))),
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        let tail: String = {
            let lines: Vec<&str> = stderr.lines().chain(stdout.lines()).collect();
            lines[lines.len().saturating_sub(5)..].join(" | ")
        };
        return Err(fail(format!("{status}: {tail}")));
    }
    Ok(stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_status_output_and_deadline() {
        let ok = run(
            Path::new("/bin/sh"),
            &["-c".into(), "echo hi".into()],
            TOOL_DEADLINE,
        );
        assert_eq!(ok.unwrap(), "hi\n");
        let err = run(
            Path::new("/bin/sh"),
            &["-c".into(), "echo broken >&2; exit 3".into()],
            TOOL_DEADLINE,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("exit status: 3") && err.contains("broken"),
            "{err}"
        );
        let slow = run(
            Path::new("/bin/sh"),
            &["-c".into(), "sleep 5".into()],
            Duration::from_millis(200),
        )
        .unwrap_err()
        .to_string();
        assert!(slow.contains("did not finish"), "{slow}");
        let missing = run(Path::new("/nonexistent/tool"), &[], TOOL_DEADLINE)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("cannot start"), "{missing}");
    }
}
