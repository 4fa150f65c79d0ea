//! The local control API of `voxtap run`: a Unix socket (by default `DIR/control.sock`, mode
//! 0660) for third parties such as an agent desktop. One request per connection, one line:
//!
//! ```text
//! start|stop|pause|resume <SIP Call-ID>\n
//! ```
//!
//! answered with `ok\n` or `error: <why>\n`. Requests act on the answered call with that
//! Call-ID and are recorded in the catalog like any other (source `policy`, reason
//! `control API`). Only local processes that can open the socket can use it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use voxtap_core::policy::{Action, Command};

pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

/// One parsed request.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub action: Action,
    pub sip_call_id: String,
}

impl Request {
    pub fn parse(line: &str) -> Result<Request, String> {
        let mut words = line.split_whitespace();
        let action = match words.next() {
            Some("start") => Action::Start,
            Some("stop") => Action::Stop,
            Some("pause") => Action::Pause,
            Some("resume") => Action::Resume,
            Some(other) => {
                return Err(format!(
                    "unknown action {other:?}: use start, stop, pause or resume"
                ));
            }
            None => {
                return Err("empty request: use `<start|stop|pause|resume> <SIP Call-ID>`".into());
            }
        };
        let Some(sip_call_id) = words.next() else {
            return Err("missing the SIP Call-ID".into());
        };
        if words.next().is_some() {
            return Err("one action and one Call-ID per request".into());
        }
        Ok(Request {
            action,
            sip_call_id: sip_call_id.to_string(),
        })
    }

    pub fn command(&self) -> Command {
        Command {
            action: self.action,
            reason: "control API".into(),
            ..Command::default()
        }
    }
}

/// The longest path a Unix socket address holds (`sun_path` is 108 bytes, NUL included).
const SUN_PATH_MAX: usize = 107;

/// Runs `f` on `path`, or, when `path` is too long for a socket address (a deep `--out`),
/// on the same file reached through `/proc/self/fd/N/` of its open directory.
fn with_short_path<T>(
    path: &Path,
    f: impl FnOnce(&Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    if path.as_os_str().as_bytes().len() <= SUN_PATH_MAX {
        return f(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return f(path);
    };
    let dir = std::fs::File::open(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })?;
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    if short.as_os_str().as_bytes().len() > SUN_PATH_MAX {
        return f(path);
    }
    f(&short)
}

impl ControlSocket {
    /// Binds the socket, replacing a stale one left by a killed run.
    pub fn bind(path: &Path) -> Result<ControlSocket> {
        if path.exists() {
            if with_short_path(path, |p| UnixStream::connect(p)).is_ok() {
                bail!(
                    "{} is in use: is another voxtap running on this directory?",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
        }
        let listener = with_short_path(path, |p| UnixListener::bind(p))
            .with_context(|| format!("cannot bind the control socket {}", path.display()))?;
        listener.set_nonblocking(true)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Answers every pending request with `handle`; never blocks the capture loop for long.
    pub fn poll(&self, mut handle: impl FnMut(&Request) -> Result<(), String>) {
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = serve(stream, &mut handle);
        }
    }
}

fn serve(
    stream: UnixStream,
    handle: &mut impl FnMut(&Request) -> Result<(), String>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut line = String::new();
    BufReader::new((&stream).take(4096)).read_line(&mut line)?;
    let reply = match Request::parse(&line).and_then(|r| handle(&r)) {
        Ok(()) => "ok\n".to_string(),
        Err(e) => format!("error: {e}\n"),
    };
    (&stream).write_all(reply.as_bytes())
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `voxtap control`: sends one request and prints the answer.
pub fn client(socket: &Path, action: &str, call: &str) -> Result<()> {
    let mut stream = with_short_path(socket, |p| UnixStream::connect(p)).with_context(|| {
        format!(
            "cannot connect to {}: is voxtap run running with this --out?",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    writeln!(stream, "{action} {call}")?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply)?;
    let reply = reply.trim();
    if let Some(err) = reply.strip_prefix("error: ") {
        bail!("{err}");
    }
    println!("{reply}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_refuse_nonsense() {
        assert_eq!(
            Request::parse("pause abc@host\n").unwrap(),
            Request {
                action: Action::Pause,
                sip_call_id: "abc@host".into()
            }
        );
        assert_eq!(Request::parse("resume x").unwrap().action, Action::Resume);
        assert!(Request::parse("").unwrap_err().contains("empty"));
        assert!(
            Request::parse("record x")
                .unwrap_err()
                .contains("unknown action")
        );
        assert!(Request::parse("stop").unwrap_err().contains("Call-ID"));
        assert!(
            Request::parse("stop a b")
                .unwrap_err()
                .contains("one action")
        );
    }

    #[test]
    fn a_socket_deeper_than_sun_path_still_binds_and_answers() {
        let mut dir = std::env::temp_dir().join(format!("voxtap-sun-{}", std::process::id()));
        while dir.as_os_str().len() < 180 {
            dir = dir.join("a-deep-recording-directory");
        }
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.sock");
        assert!(path.as_os_str().len() > SUN_PATH_MAX);
        let socket = ControlSocket::bind(&path).unwrap();
        assert!(path.exists(), "the socket is at the path asked for");
        let again = ControlSocket::bind(&path)
            .err()
            .expect("a live socket is not replaced");
        assert!(format!("{again:#}").contains("in use"), "{again:#}");
        let server = std::thread::spawn(move || {
            loop {
                let mut served = false;
                socket.poll(|r| {
                    served = true;
                    if r.sip_call_id == "abc@host" {
                        Ok(())
                    } else {
                        Err("no such call".into())
                    }
                });
                if served {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        client(&path, "pause", "abc@host").unwrap();
        server.join().unwrap();
        assert!(!path.exists(), "dropping the socket removes it");
        std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("voxtap-sun-{}", std::process::id())),
        )
        .unwrap();
    }
}
