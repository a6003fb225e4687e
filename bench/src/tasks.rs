//! The two kinds of bench client in a flow: a receiver (log in, read, check order, record
//! latency) and a sender (log in, wait for the start, keep `window` requests in flight, count
//! the replies). See [`crate::flow`] for how a run puts them together.

use crate::client::{Conn, Endpoint, now_ns};
use crate::flow::{Ready, SenderSpec, Stage};
use crate::order::{OrderCheck, OrderSummary};
use crate::stats::Histogram;
use crate::verdict::{Delivered, UNCOUNTED};
use crate::wire::{self, Incoming, Role};
use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, mpsc, watch};

#[derive(Default)]
pub struct SendStats {
    /// The sender's index.
    pub k: u32,
    pub acked: u64,
    pub delivered: u64,
    /// What each reply said, in order (replies come in request order, and message `s` is
    /// the `s`-th request): the copies queued, 0 for an error.
    pub per_seq: Vec<Delivered>,
    pub errors: BTreeMap<String, u64>,
    pub first_send: u64,
    pub last_reply: u64,
    /// The connection, kept open until the run's figures are taken (see `RecvStats::held`).
    pub held: Option<Conn>,
}

#[derive(Default)]
pub struct RecvStats {
    pub hist: Histogram,
    pub order: OrderSummary,
    /// Which messages of which sender arrived, for the verdict.
    pub checks: Vec<(u32, OrderCheck)>,
    pub foreign: u64,
    pub byes: u64,
    pub last_recv: u64,
    /// The connection, still open: closing it as soon as this receiver is complete would make
    /// the server start its `leave` events (one to every user still logged in: O(R^2) for the
    /// run) while the others are still being measured.
    pub held: Option<Conn>,
}

/// Everything measured in one flow run.
pub async fn receiver(
    ep: Endpoint,
    name: String,
    mut checks: Vec<(u32, OrderCheck)>,
    (ready, settled): (mpsc::Sender<Ready>, mpsc::UnboundedSender<()>),
    mut stop: watch::Receiver<bool>,
    logins: Arc<Semaphore>,
) -> Result<RecvStats> {
    let permit = logins.acquire_owned().await?;
    let conn = async {
        let mut c = Conn::connect(ep, 64 * 1024).await?;
        c.login(&name, Role::Receiver).await?;
        Ok::<_, anyhow::Error>(c)
    }
    .await;
    drop(permit);
    let mut conn = match conn {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e)).await;
            return Ok(RecvStats::default());
        }
    };
    let _ = ready.send(Ok(None)).await;
    let mut st = RecvStats::default();
    let mut complete = checks.iter().all(|(_, c)| c.complete());
    // Senders whose warm-up message has not arrived yet.
    let mut warming: Vec<u32> = checks.iter().map(|(k, _)| *k).collect();
    if warming.is_empty() {
        let _ = settled.send(());
    }
    while !complete {
        tokio::select! {
            r = conn.read_events(|ev, now| {
                match ev {
                    Incoming::Msg { sender, seq: wire::WARM_UP, .. } => {
                        let was_warming = !warming.is_empty();
                        warming.retain(|k| *k != sender);
                        if was_warming && warming.is_empty() {
                            let _ = settled.send(());
                        }
                    }
                    Incoming::Msg { sender, seq, t_ns } => {
                        st.last_recv = now;
                        st.hist.record(now.saturating_sub(t_ns));
                        match checks.iter_mut().find(|(k, _)| *k == sender) {
                            Some((_, c)) => c.record(seq),
                            None => st.foreign += 1,
                        }
                    }
                    Incoming::Bye => st.byes += 1,
                    _ => {}
                }
            }) => {
                if r.unwrap_or(0) == 0 {
                    break;
                }
                complete = checks.iter().all(|(_, c)| c.complete());
            }
            _ = stop.changed() => break,
        }
    }
    for (_, c) in &checks {
        st.order.add(&c.summary());
    }
    st.checks = checks;
    st.held = Some(conn);
    Ok(st)
}

/// A sender's identity: its index (carried in bodies), its name, and its recipient.
pub struct Who {
    pub k: u32,
    pub name: String,
    pub to: String,
}

#[allow(clippy::too_many_arguments)]
pub async fn sender(
    ep: Endpoint,
    Who { k, name, to }: Who,
    spec: SenderSpec,
    paced: bool,
    (ready, settled): (mpsc::Sender<Ready>, mpsc::UnboundedSender<()>),
    mut go: watch::Receiver<Stage>,
    logins: Arc<Semaphore>,
    deadline: Instant,
) -> Result<SendStats> {
    let permit = logins.acquire_owned().await?;
    let conn = async {
        let mut c = Conn::connect(ep, 64 * 1024).await?;
        c.login(&name, Role::Sender).await?;
        let writer = match paced {
            true => Some((k, socket2::SockRef::from(&c.stream).try_clone()?.into())),
            false => None,
        };
        Ok::<_, anyhow::Error>((c, writer))
    }
    .await;
    drop(permit);
    let mut conn = match conn {
        Ok((c, writer)) => {
            let _ = ready.send(Ok(writer)).await;
            c
        }
        Err(e) => {
            let _ = ready.send(Err(e)).await;
            return Ok(SendStats::default());
        }
    };
    while *go.borrow_and_update() < Stage::WarmUp {
        go.changed().await?;
    }
    let mut out = Vec::with_capacity(64 * 1024);
    ep.wire.msg(&mut out, &to, k, wire::WARM_UP, now_ns(), 0);
    conn.stream.write_all(&out).await?;
    let mut replied = false;
    while !replied {
        let r = conn.read_events(|ev, _| {
            replied |= matches!(ev, Incoming::Ok { .. } | Incoming::Error { .. });
        });
        if r.await? == 0 {
            bail!("server closed sender {name} before answering its warm-up message");
        }
    }
    let _ = settled.send(());
    while *go.borrow_and_update() < Stage::Go {
        go.changed().await?;
    }
    let mut st = SendStats {
        k,
        first_send: now_ns(),
        per_seq: Vec::with_capacity(spec.msgs as usize),
        ..SendStats::default()
    };
    let mut sent = if paced { spec.msgs } else { 0 };
    while st.acked < spec.msgs {
        let allowed = spec
            .window
            .saturating_sub(sent - st.acked)
            .min(spec.msgs - sent);
        if allowed > 0 {
            out.clear();
            let now = now_ns();
            for seq in sent..sent + allowed {
                ep.wire.msg(&mut out, &to, k, seq, now, spec.pad);
            }
            conn.stream.write_all(&out).await?;
            sent += allowed;
        }
        tokio::select! {
            r = conn.read_events(|ev, now| match ev {
                Incoming::Ok { delivered } => {
                    st.acked += 1;
                    st.delivered += delivered.unwrap_or(0);
                    st.per_seq.push(match delivered {
                        Some(d) => d.min(u64::from(UNCOUNTED - 1)) as Delivered,
                        None => UNCOUNTED,
                    });
                    st.last_reply = now;
                }
                Incoming::Error { code } => {
                    st.acked += 1;
                    st.per_seq.push(0);
                    // Codes go into `key=value` lines: NATS's have spaces.
                    *st.errors.entry(code.replace(' ', "_")).or_default() += 1;
                    st.last_reply = now;
                }
                _ => {}
            }) => {
                if r? == 0 {
                    bail!("server closed sender {name} after {} replies", st.acked);
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => break,
        }
    }
    st.held = Some(conn);
    Ok(st)
}
