//! The terminal dashboard: draws [`crate::proto::Snapshot`]s with ratatui (docs/tui.md).
//!
//! [`App`] is the whole viewer without a terminal: it takes snapshots ([`App::set_snapshot`])
//! and keys ([`App::on_key`]) and draws into any ratatui [`Frame`](ratatui::Frame)
//! ([`App::draw`]), so every screen can be tested with ratatui's `TestBackend`. [`run`] is the
//! thin loop that puts it on the real terminal, fed by a [`Feed`].

mod app;
mod draw;
mod ladder;
mod save;
mod text;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::{DefaultTerminal, Terminal, backend::CrosstermBackend};

pub use app::{Action, App, HISTORY, Pane, RecFilter, Screen, SortKey, StateFilter};
pub use draw::{HELP, MIN_HEIGHT, MIN_WIDTH};
pub use ladder::short_first_line;
pub use save::{write_pcap, write_text};

use crate::proto::Snapshot;

/// Where the viewer's news comes from: the daemon's status socket, or a test's script.
pub trait Feed {
    /// Waits up to `timeout` for news: a new snapshot, a status change (connection lost,
    /// retrying), or nothing.
    fn poll(&mut self, timeout: Duration) -> FeedEvent;
    /// The viewer wants this call's detail in later snapshots (`None`: none).
    fn follow(&mut self, call: Option<u64>);
}

/// What [`Feed::poll`] brought.
// A snapshot is moved a few times a second: not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum FeedEvent {
    Snapshot(Snapshot),
    /// A banner to show (`None` clears it): "daemon gone (...); retrying every 1 s".
    Status(Option<String>),
    Nothing,
}

/// How long the loop waits for a key before it asks the feed.
const KEY_POLL: Duration = Duration::from_millis(50);
/// How long it then waits for the feed.
const FEED_POLL: Duration = Duration::from_millis(50);

/// Runs the interactive loop on the real terminal until the user quits or `stop` becomes true
/// (the caller registers it for SIGTERM with signal-hook), saving calls into the current
/// directory. The terminal is restored on every way out: return, error, panic and stop.
pub fn run(feed: &mut dyn Feed, stop: &AtomicBool) -> io::Result<()> {
    run_app(App::new(), feed, stop)
}

/// [`run`] with a viewer of the caller's (e.g. [`App::with_save_dir`]).
pub fn run_app(mut app: App, feed: &mut dyn Feed, stop: &AtomicBool) -> io::Result<()> {
    let mut guard = TerminalGuard::enter()?;
    let terminal = &mut guard.terminal;
    while !stop.load(Ordering::Relaxed) {
        terminal.draw(|f| app.draw(f))?;
        let mut had_key = false;
        if event::poll(KEY_POLL)? {
            // Take every event waiting, so a held key does not lag behind the screen.
            loop {
                match event::read()? {
                    Event::Key(k) if k.kind != KeyEventKind::Release => {
                        had_key = true;
                        match app.on_key(k) {
                            Action::Quit => return Ok(()),
                            Action::Follow(call) => feed.follow(call),
                            Action::Saved(_) | Action::Controlled(_) | Action::None => {}
                        }
                    }
                    // The next draw resizes to the new size.
                    Event::Resize(_, _) => terminal.autoresize()?,
                    _ => {}
                }
                if !event::poll(Duration::ZERO)? {
                    break;
                }
            }
        }
        let timeout = if had_key { Duration::ZERO } else { FEED_POLL };
        match feed.poll(timeout) {
            FeedEvent::Snapshot(s) => app.set_snapshot(s),
            FeedEvent::Status(s) => app.set_status(s),
            FeedEvent::Nothing => {}
        }
    }
    Ok(())
}

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// The terminal in raw mode on the alternate screen, for as long as it lives: dropping it (on
/// return, error or unwinding) restores the terminal, and so does a panic, through a hook that
/// restores it before the previous hook prints the panic.
struct TerminalGuard {
    terminal: DefaultTerminal,
    previous_hook: Arc<PanicHook>,
}

fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        io::stdout(),
        LeaveAlternateScreen,
        ratatui::crossterm::cursor::Show
    );
}

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        let previous_hook: Arc<PanicHook> = Arc::new(std::panic::take_hook());
        let chained = Arc::clone(&previous_hook);
        std::panic::set_hook(Box::new(move |info| {
            restore();
            chained(info);
        }));
        let set_up = || -> io::Result<DefaultTerminal> {
            enable_raw_mode()?;
            execute!(io::stdout(), EnterAlternateScreen)?;
            let mut t = Terminal::new(CrosstermBackend::new(io::stdout()))?;
            t.hide_cursor()?;
            t.clear()?;
            Ok(t)
        };
        match set_up() {
            Ok(terminal) => Ok(TerminalGuard {
                terminal,
                previous_hook,
            }),
            Err(e) => {
                restore();
                put_back_hook(previous_hook);
                Err(e)
            }
        }
    }
}

fn put_back_hook(previous: Arc<PanicHook>) {
    std::panic::set_hook(Box::new(move |info| previous(info)));
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
        // A panicking thread may not touch the hook; the process is on its way out anyway.
        if !std::thread::panicking() {
            put_back_hook(Arc::clone(&self.previous_hook));
        }
    }
}
