//! Who is on the other end of an admin connection, and whether they may administer chatd.
//!
//! The socket file's mode 0660 already makes the kernel refuse anyone who is not the owner or
//! in the file's group; this is the second layer, in case the mode or the directory is
//! loosened. Allowed: root, the daemon's own user, and members of the daemon's group.
//!
//! `SO_PEERCRED` carries only the peer's primary gid, so the supplementary groups come from
//! `SO_PEERGROUPS` (Linux 4.13+): the groups the connecting process had at `connect`, which
//! are exactly what the kernel checked against the file's mode. That needs no lookup in the
//! group database (which may block on LDAP or sssd) and cannot disagree with it.

use std::io;
use std::os::fd::AsRawFd;
use tokio::net::UnixStream;

/// The credentials of a connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// Supplementary groups; empty if the kernel cannot say.
    pub groups: Vec<u32>,
}

/// Whom the daemon lets in: its own effective user and group (and root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub uid: u32,
    pub gid: u32,
}

impl Policy {
    /// The running process's effective uid and gid.
    pub fn current() -> Policy {
        // SAFETY: geteuid and getegid take no arguments, cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Policy { uid, gid }
    }

    pub fn allows(&self, peer: &Peer) -> bool {
        peer.uid == 0
            || peer.uid == self.uid
            || peer.gid == self.gid
            || peer.groups.contains(&self.gid)
    }

    /// The refusal told to the peer and logged.
    pub fn refusal(&self, peer: &Peer) -> String {
        format!(
            "uid {} may not administer chatd: only root, uid {} (chatd's user) and members of gid {} (chatd's group) may",
            peer.uid, self.uid, self.gid
        )
    }
}

/// Reads the peer's credentials from a connected Unix socket.
pub fn peer(stream: &UnixStream) -> io::Result<Peer> {
    let cred = stream.peer_cred()?;
    let groups = peer_groups(stream).unwrap_or_else(|e| {
        tracing::debug!(error = %e, "SO_PEERGROUPS unavailable; checking the primary group only");
        Vec::new()
    });
    Ok(Peer {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
        groups,
    })
}

fn peer_groups(stream: &UnixStream) -> io::Result<Vec<u32>> {
    let fd = stream.as_raw_fd();
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `fd` is an open socket for the duration of the call, and `groups` is a
        // writable buffer of exactly `len` bytes; the kernel writes at most `len` bytes and
        // sets `len` to the size it wrote (or needs, with ERANGE).
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let err = io::Error::last_os_error();
        // ERANGE: the buffer was too small and `len` says how large it must be.
        if err.raw_os_error() == Some(libc::ERANGE) && n > groups.len() {
            groups.resize(n, 0);
            continue;
        }
        return Err(err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid,
            pid: None,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn root_the_daemons_user_and_its_group_get_in() {
        let p = Policy {
            uid: 1000,
            gid: 500,
        };
        assert!(p.allows(&peer(0, 0, &[])));
        assert!(p.allows(&peer(1000, 1000, &[])));
        assert!(p.allows(&peer(1001, 500, &[])));
        assert!(p.allows(&peer(1001, 1001, &[20, 500])));
        assert!(!p.allows(&peer(1001, 1001, &[20])));
        assert_eq!(
            p.refusal(&peer(1001, 1001, &[])),
            "uid 1001 may not administer chatd: only root, uid 1000 (chatd's user) and members of gid 500 (chatd's group) may"
        );
    }

    #[tokio::test]
    async fn a_socket_pair_reports_our_own_credentials() {
        let (a, _b) = UnixStream::pair().unwrap();
        let me = Policy::current();
        let p = super::peer(&a).unwrap();
        assert_eq!((p.uid, p.gid), (me.uid, me.gid));
        assert_eq!(p.pid, Some(std::process::id() as i32));
        assert!(me.allows(&p));
    }
}
