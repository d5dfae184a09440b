//! Connections open per door (HTTP, SMTP in), bounded in all and per client address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Connections open, in all and per client (see [`client_key`]).
pub struct ConnTable {
    max_total: usize,
    max_per_ip: usize,
    /// (connections in all, connections per client); a client with none has no entry, so the
    /// map never holds more than `max_total` entries.
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; dropping it gives its place back.
pub struct Slot {
    table: Arc<ConnTable>,
    client: IpAddr,
}

impl ConnTable {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        ConnTable {
            max_total,
            max_per_ip,
            open: Mutex::new((0, HashMap::new())),
        }
    }

    /// A place for a connection from `ip`, if neither limit is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let client = client_key(ip);
        let mut open = self.open.lock().expect("connection table");
        let (total, per_client) = &mut *open;
        if *total >= self.max_total {
            return None;
        }
        let n = per_client.entry(client).or_insert(0);
        if *n >= self.max_per_ip {
            return None;
        }
        *n += 1;
        *total += 1;
        Some(Slot {
            table: self.clone(),
            client,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().expect("connection table");
        let (total, per_client) = &mut *open;
        *total -= 1;
        if let Some(n) = per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

/// Whom a connection is counted against: an IPv4 address (also when it arrives IPv4-mapped on
/// an IPv6 socket), or an IPv6 address's /64, which is what one subscriber or host is given:
/// counting single IPv6 addresses would let one client open a connection from each of 2^64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_per_client_and_in_all() {
        let table = Arc::new(ConnTable::new(3, 2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = table.admit(a).unwrap();
        let _a2 = table.admit(a).unwrap();
        assert!(table.admit(a).is_none(), "a third from a");
        let b1 = table.admit(b).unwrap();
        assert!(table.admit(b).is_none(), "a fourth in all");
        drop(a1);
        let _a3 = table.admit(a).unwrap();
        drop(b1);
        assert_eq!(table.open.lock().unwrap().1.len(), 1, "no entry for b left");
        // IPv4-mapped is the IPv4 client; one /64 is one client.
        assert!(
            table.admit("::ffff:192.0.2.1".parse().unwrap()).is_none(),
            "a's third, IPv4-mapped"
        );
        let wide = Arc::new(ConnTable::new(10, 1));
        let _x = wide.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(
            wide.admit("2001:db8:1:2:ffff::9".parse().unwrap())
                .is_none()
        );
        assert!(wide.admit("2001:db8:1:3::1".parse().unwrap()).is_some());
    }
}
