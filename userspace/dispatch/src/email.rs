//! Email (pascom's shape): SMTP, STARTTLS by default, the recording attached or linked, to the
//! addresses the configuration gives for every call, the call's tenant and its users.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use crate::{AttemptResult, DispatchError, Job, Outcome, Retry, tail, template};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// STARTTLS required: no mail goes out in clear.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain SMTP (a relay on the loopback only).
    None,
}

#[derive(Clone, Debug)]
pub struct EmailTarget {
    pub name: String,
    pub server: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    /// The password, first line of this file (so it stays out of the config).
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub from: String,
    /// For every recording.
    pub to: Vec<String>,
    /// By the tenant the rules found for the call.
    pub tenants: BTreeMap<String, Vec<String>>,
    /// By a user the rules found on either side.
    pub users: BTreeMap<String, Vec<String>>,
    /// Attach the recording.
    pub attach: bool,
    /// A link to it in the text (a template: the recording's place on an archive).
    pub link: Option<String>,
    /// The subject, a template.
    pub subject: String,
    pub timeout: Duration,
    pub retry: Retry,
}

impl EmailTarget {
    /// The addresses this job goes to, without repeats.
    pub fn recipients(&self, job: &Job) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let by_tenant = job.tenant.as_ref().and_then(|t| self.tenants.get(t));
        let by_user = job.users.iter().filter_map(|u| self.users.get(u));
        for a in self
            .to
            .iter()
            .chain(by_tenant.into_iter().flatten())
            .chain(by_user.flatten())
        {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }

    /// What can be checked before any mail: addresses parse, files are readable.
    pub(crate) fn check(&self) -> Result<(), DispatchError> {
        let bad = |what: String| DispatchError::Target {
            target: self.name.clone(),
            what,
        };
        let all = std::iter::once(&self.from)
            .chain(&self.to)
            .chain(self.tenants.values().flatten())
            .chain(self.users.values().flatten());
        for a in all {
            a.parse::<Mailbox>()
                .map_err(|e| bad(format!("{a:?} is not an email address: {e}")))?;
        }
        self.password()?;
        self.tls_parameters()?;
        Ok(())
    }

    fn password(&self) -> Result<Option<String>, DispatchError> {
        let Some(p) = &self.password_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(p).map_err(|source| DispatchError::Io {
            path: p.clone(),
            source,
        })?;
        Ok(Some(text.lines().next().unwrap_or("").to_string()))
    }

    fn tls_parameters(&self) -> Result<Option<TlsParameters>, DispatchError> {
        if self.security == Security::None {
            return Ok(None);
        }
        let mut b = TlsParameters::builder(self.server.clone());
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|source| DispatchError::Io {
                path: ca.clone(),
                source,
            })?;
            let cert = Certificate::from_pem(&pem).map_err(|e| DispatchError::Target {
                target: self.name.clone(),
                what: format!("ca_file {}: {e}", ca.display()),
            })?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls()
            .map(Some)
            .map_err(|e| DispatchError::Target {
                target: self.name.clone(),
                what: format!("TLS for {}: {e}", self.server),
            })
    }

    pub(crate) fn send(&self, dir: &Path, job: &Job) -> Outcome {
        let to = self.recipients(job);
        let destination = format!("{} via {}:{}", to.join(", "), self.server, self.port);
        let out = |result, detail: String| Outcome {
            result,
            detail,
            destination: destination.clone(),
        };
        if to.is_empty() {
            return out(
                AttemptResult::Skipped,
                format!(
                    "no recipient: no address for every call, for tenant {}, or for users [{}]",
                    job.tenant.as_deref().unwrap_or("(none)"),
                    job.users.join(", ")
                ),
            );
        }
        match self.message(dir, job, &to).and_then(|m| self.deliver(&m)) {
            Ok(reply) => out(AttemptResult::Ok, reply),
            Err((result, e)) => out(result, e),
        }
    }

    fn message(
        &self,
        dir: &Path,
        job: &Job,
        to: &[String],
    ) -> Result<Message, (AttemptResult, String)> {
        let err = |e: String| (AttemptResult::Error, e);
        let mut b = Message::builder()
            .from(
                self.from
                    .parse()
                    .map_err(|e| err(format!("from {:?}: {e}", self.from)))?,
            )
            .subject(template::render(&self.subject, job, false));
        for a in to {
            b = b.to(a.parse().map_err(|e| err(format!("to {a:?}: {e}")))?);
        }
        let mut text = format!(
            "Call {} from {} to {}\nSIP Call-ID: {}\nRecording {}: {} ({}, {}, {:.1} s)\n",
            job.call_id,
            job.caller,
            job.callee,
            job.sip_call_id,
            job.recording_id,
            job.file_name(),
            job.format,
            job.state,
            job.duration_s.unwrap_or(0.0)
        );
        if let Some(t) = &job.tenant {
            text.push_str(&format!("Tenant: {t}\n"));
        }
        if let Some(link) = &self.link {
            text.push_str(&format!("Listen: {}\n", template::render(link, job, false)));
        }
        let body = SinglePart::plain(text);
        let msg = if self.attach {
            let path = dir.join(&job.path);
            let bytes = std::fs::read(&path)
                .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
            let kind = ContentType::parse(job.content_type())
                .map_err(|e| err(format!("content type {}: {e}", job.content_type())))?;
            b.multipart(
                MultiPart::mixed()
                    .singlepart(body)
                    .singlepart(Attachment::new(job.file_name()).body(bytes, kind)),
            )
        } else {
            b.singlepart(body)
        };
        msg.map_err(|e| err(format!("cannot build the message: {e}")))
    }

    fn deliver(&self, msg: &Message) -> Result<String, (AttemptResult, String)> {
        let err = |e: DispatchError| (AttemptResult::Error, e.to_string());
        let tls = match self.tls_parameters().map_err(err)? {
            None => Tls::None,
            Some(p) if self.security == Security::Tls => Tls::Wrapper(p),
            Some(p) => Tls::Required(p),
        };
        let mut b = SmtpTransport::builder_dangerous(self.server.clone())
            .port(self.port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let Some(user) = &self.username {
            let pass = self.password().map_err(err)?.unwrap_or_default();
            b = b.credentials(Credentials::new(user.clone(), pass));
        }
        match b.build().send(msg) {
            Ok(r) => Ok(format!(
                "SMTP {} {}",
                r.code(),
                tail(&r.message().collect::<Vec<_>>().join(" "), 200)
            )),
            Err(e) if e.is_timeout() => Err((
                AttemptResult::Timeout,
                format!("no answer within {:?}: {e}", self.timeout),
            )),
            Err(e) => Err((AttemptResult::Error, format!("SMTP: {e}"))),
        }
    }
}
