//! What spawning one session costs the allocator: its task's allocation is the largest piece
//! of an idle connection's memory (chatbench's idle scenario), and the allocator rounds it up
//! to a size class, so a few bytes more in the session future can cost a whole class step.

mod common;

use chatd::session::run;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Records the largest allocation made while `RECORDING` is set.
struct Recorder;

static RECORDING: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);
static ALIGN: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Recorder {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if RECORDING.load(Ordering::Relaxed) && layout.size() > LARGEST.load(Ordering::Relaxed) {
            LARGEST.store(layout.size(), Ordering::Relaxed);
            ALIGN.store(layout.align(), Ordering::Relaxed);
        }
        // SAFETY: the caller's layout is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Recorder = Recorder;

/// The budget: every idle connection pays for its task (chatbench's idle target is 1.6 KiB a
/// connection at 10 000). Tasks come in 128-byte steps (tokio aligns them to a cache line);
/// this is the step the session fits in since the session future stopped keeping its
/// arguments (640 before).
const SESSION_TASK_BUDGET: usize = 512;

#[test]
fn a_session_task_stays_within_its_budget() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let (server, slot) = common::server_and_slot();
        let tracker = tokio_util::task::TaskTracker::new();
        let fut = run(stream, peer, server, slot);
        eprintln!("session future: {} bytes", std::mem::size_of_val(&fut));
        RECORDING.store(true, Ordering::SeqCst);
        // Spawned the way the listener spawns it.
        let task = tracker.spawn(fut);
        RECORDING.store(false, Ordering::SeqCst);
        task.abort();
        let (size, align) = (LARGEST.load(Ordering::SeqCst), ALIGN.load(Ordering::SeqCst));
        eprintln!("session task: {size} bytes, aligned to {align}");
        assert!(
            size <= SESSION_TASK_BUDGET,
            "a session task takes {size} bytes, over its budget of {SESSION_TASK_BUDGET}: \
             shrink the session future or decide the growth is worth it"
        );
    });
}
