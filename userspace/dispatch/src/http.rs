//! HTTP PUT or POST of the recording to a URL rendered from a template (Kazoo's shape).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::{AttemptResult, DispatchError, Job, Outcome, Retry, tail, template};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Put,
    Post,
}

#[derive(Clone, Debug)]
pub struct HttpTarget {
    pub name: String,
    /// `http://` or `https://`, with `{field}`s (percent-encoded when rendered).
    pub url: String,
    pub method: Method,
    /// Sent with every request (`Authorization`, say); `Content-Type` is the format's
    /// unless one is given here.
    pub headers: Vec<(String, String)>,
    /// For the whole request: connect, send, answer.
    pub timeout: Duration,
    /// PEM roots to trust instead of the built-in Mozilla set (a private CA).
    pub ca_file: Option<PathBuf>,
    /// Remove the local file once the upload is acknowledged (2xx) and every other job of the
    /// recording is done; `recordings.removed_by` then names this target.
    pub delete_after_upload: bool,
    pub retry: Retry,
}

impl HttpTarget {
    pub(crate) fn agent(&self) -> Result<ureq::Agent, DispatchError> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|source| DispatchError::Io {
                path: ca.clone(),
                source,
            })?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| DispatchError::Target {
                    target: self.name.clone(),
                    what: format!("ca_file {}: {e}", ca.display()),
                })?;
            if certs.is_empty() {
                return Err(DispatchError::Target {
                    target: self.name.clone(),
                    what: format!("ca_file {}: no PEM certificate in it", ca.display()),
                });
            }
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
        }
        Ok(ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("voxtap/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build()
            .into())
    }

    /// One upload: 2xx is `ok` with the status; anything else an `error` (or `timeout`).
    pub(crate) fn send(&self, agent: &ureq::Agent, dir: &Path, job: &Job) -> Outcome {
        let url = template::render(&self.url, job, true);
        let fail = |result, detail: String| Outcome {
            result,
            detail,
            destination: url.clone(),
        };
        let path = dir.join(&job.path);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                return fail(
                    AttemptResult::Error,
                    format!("cannot open {}: {e}", path.display()),
                );
            }
        };
        let builder = match self.method {
            Method::Put => agent.put(&url),
            Method::Post => agent.post(&url),
        };
        let mut builder = builder;
        let mut typed = false;
        for (k, v) in &self.headers {
            typed |= k.eq_ignore_ascii_case("content-type");
            builder = builder.header(k.as_str(), v.as_str());
        }
        if !typed {
            builder = builder.header("Content-Type", job.content_type());
        }
        match builder.send(&file) {
            Ok(mut resp) => {
                let status = resp.status();
                let mut body = String::new();
                let _ = resp
                    .body_mut()
                    .as_reader()
                    .take(512)
                    .read_to_string(&mut body);
                let detail = format!(
                    "HTTP {} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("")
                );
                if status.is_success() {
                    fail(AttemptResult::Ok, detail.trim_end().to_string())
                } else {
                    fail(
                        AttemptResult::Error,
                        format!("{}: {}", detail.trim_end(), tail(&body, 200)),
                    )
                }
            }
            Err(ureq::Error::Timeout(t)) => fail(
                AttemptResult::Timeout,
                format!("no answer within {:?} ({t})", self.timeout),
            ),
            Err(e) => fail(AttemptResult::Error, e.to_string()),
        }
    }
}
