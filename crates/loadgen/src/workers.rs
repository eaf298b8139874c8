//! Splitting a scenario over processes. One process here may hold fewer than 20,000 open
//! files, so past that the parent re-executes itself as `confab-loadgen worker`, one child
//! per slice. The protocol is JSON lines: the parent writes the task on the child's stdin,
//! the child answers `opened` once its sessions are open, the parent writes `stop` (or
//! closes stdin) when the hold is over, and the child answers `done` with its counters and
//! its serialized histograms, then exits. A slice can also run inside the parent, with the
//! same interface ([`Slice`]).

use crate::scenarios::connections::{self, Opened, SliceResult, SliceSpec};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a child has to answer `done` after `stop`, and then to exit.
const FINISH_TIMEOUT: Duration = Duration::from_secs(60);

/// What a child is asked to do (the first line of its stdin).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum WorkerTask {
    /// A slice of `connections`.
    Connections(SliceSpec),
}

/// What a child says (one line of its stdout each).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerEvent {
    /// Every session of the slice is open or failed.
    Opened(Opened),
    /// The slice stopped; its results.
    Done(SliceResult),
    /// The slice could not run.
    Failed {
        /// Why.
        error: String,
    },
}

/// One slice of a run, in this process or in a child.
pub enum Slice {
    /// Runs as a task of this process.
    Local {
        /// Resolves once the sessions are open.
        opened: Option<oneshot::Receiver<Opened>>,
        /// Ends the hold.
        stop: CancellationToken,
        /// The slice.
        task: JoinHandle<anyhow::Result<SliceResult>>,
    },
    /// Runs in a child process.
    Process {
        /// The child (killed if dropped).
        child: Box<Child>,
        /// Its stdin, for `stop`.
        stdin: Option<ChildStdin>,
        /// Its stdout, line by line.
        lines: Lines<BufReader<ChildStdout>>,
    },
}

impl Slice {
    /// A slice in this process.
    pub fn local(spec: SliceSpec) -> Self {
        let (tx, rx) = oneshot::channel();
        let stop = CancellationToken::new();
        let task = tokio::spawn(connections::run_slice(spec, tx, stop.clone()));
        Self::Local {
            opened: Some(rx),
            stop,
            task,
        }
    }

    /// A slice in a new child process running this same binary.
    pub async fn process(spec: SliceSpec) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this program to start workers")?;
        let mut child = tokio::process::Command::new(exe)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting a worker process")?;
        let mut stdin = child.stdin.take().context("worker stdin")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let mut task = serde_json::to_string(&WorkerTask::Connections(spec))?;
        task.push('\n');
        stdin
            .write_all(task.as_bytes())
            .await
            .context("handing a worker its task")?;
        stdin.flush().await?;
        Ok(Self::Process {
            child: Box::new(child),
            stdin: Some(stdin),
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// Waits until the slice's sessions are open (or failed).
    pub async fn opened(&mut self) -> anyhow::Result<Opened> {
        match self {
            Self::Local { opened, .. } => {
                let rx = opened.take().context("opened() asked twice")?;
                rx.await
                    .context("the slice ended before opening its sessions")
            }
            Self::Process { lines, .. } => match next_event(lines).await? {
                WorkerEvent::Opened(opened) => Ok(opened),
                WorkerEvent::Failed { error } => bail!("a worker failed: {error}"),
                WorkerEvent::Done(_) => {
                    bail!("a worker finished before saying its sessions were open")
                }
            },
        }
    }

    /// Ends the hold and collects the results.
    pub async fn finish(self) -> anyhow::Result<SliceResult> {
        match self {
            Self::Local { stop, task, .. } => {
                stop.cancel();
                tokio::time::timeout(FINISH_TIMEOUT, task)
                    .await
                    .context("the slice did not stop in time")?
                    .context("the slice panicked")?
            }
            Self::Process {
                mut child,
                stdin,
                mut lines,
            } => {
                if let Some(mut stdin) = stdin {
                    let _ = stdin.write_all(b"stop\n").await;
                    let _ = stdin.flush().await;
                }
                let event = tokio::time::timeout(FINISH_TIMEOUT, next_event(&mut lines))
                    .await
                    .context("a worker did not report in time")??;
                if tokio::time::timeout(FINISH_TIMEOUT, child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.start_kill();
                }
                match event {
                    WorkerEvent::Done(result) => Ok(result),
                    WorkerEvent::Failed { error } => bail!("a worker failed: {error}"),
                    WorkerEvent::Opened(_) => bail!("a worker said `opened` twice"),
                }
            }
        }
    }
}

/// The next event line of a child, skipping anything else it printed.
async fn next_event(lines: &mut Lines<BufReader<ChildStdout>>) -> anyhow::Result<WorkerEvent> {
    while let Some(line) = lines.next_line().await.context("reading a worker")? {
        if let Ok(event) = serde_json::from_str(&line) {
            return Ok(event);
        }
    }
    bail!("a worker exited without reporting (see its stderr above)")
}

/// The `worker` subcommand: reads its task from stdin, runs it, reports on stdout. Stdin
/// saying `stop`, or closing (the parent is gone), ends the hold.
pub async fn worker_main() -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let line = stdin
        .next_line()
        .await?
        .context("no task on stdin (this subcommand is for the load generator itself)")?;
    let WorkerTask::Connections(spec) = serde_json::from_str(&line).context("parsing the task")?;
    let (tx, rx) = oneshot::channel();
    let stop = CancellationToken::new();
    let slice = tokio::spawn(connections::run_slice(spec, tx, stop.clone()));
    let mut stdout = tokio::io::stdout();
    if let Ok(opened) = rx.await {
        say(&mut stdout, &WorkerEvent::Opened(opened)).await?;
        // Wait for `stop` or the end of stdin.
        loop {
            match stdin.next_line().await {
                Ok(Some(line)) if line.trim() != "stop" => continue,
                _ => break,
            }
        }
    }
    stop.cancel();
    let event = match slice.await {
        Ok(Ok(result)) => WorkerEvent::Done(result),
        Ok(Err(e)) => WorkerEvent::Failed {
            error: format!("{e:#}"),
        },
        Err(e) => WorkerEvent::Failed {
            error: format!("the slice panicked: {e}"),
        },
    };
    say(&mut stdout, &event).await
}

async fn say(stdout: &mut tokio::io::Stdout, event: &WorkerEvent) -> anyhow::Result<()> {
    let mut line = serde_json::to_string(event)?;
    line.push('\n');
    stdout.write_all(line.as_bytes()).await?;
    stdout.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_json_object_per_line() {
        let line = serde_json::to_string(&WorkerEvent::Opened(Opened {
            connected: 3,
            ..Opened::default()
        }))
        .unwrap();
        assert!(!line.contains('\n'));
        assert!(line.contains(r#""event":"opened""#));
        let back: WorkerEvent = serde_json::from_str(&line).unwrap();
        assert!(matches!(back, WorkerEvent::Opened(o) if o.connected == 3));
    }
}
