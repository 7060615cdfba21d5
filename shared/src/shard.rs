//! Spreading a key over shards, so that no partition takes every write: a task's shard is
//! a stable hash of its id (FNV-1a), the same in every process and release.

use uuid::Uuid;

/// The shard of `task_id` among `shards` (at least 1): from 0 to `shards` − 1.
pub fn of(task_id: Uuid, shards: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let hash = task_id.as_bytes().iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    });
    (hash % u64::from(shards.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_a_task_is_placed_should_land_where_every_release_puts_it() {
        let id: Uuid = "0b9d8f0e-6a3e-4c43-9d43-7d3cfa0b2a11".parse().unwrap();
        // Pinned: another answer would strand every marker written before it.
        assert_eq!((of(id, 32), of(id, 1000)), (18, 866));
        assert_eq!(of(id, 1), 0);
        assert_eq!(of(id, 0), 0);
    }

    #[test]
    fn when_many_tasks_are_placed_should_spread_them_evenly_over_every_shard() {
        let shards = 16;
        let tasks = 16_000;
        let mut counts = vec![0u32; shards as usize];
        for i in 0..tasks {
            // Sequential ids, the worst case for a weak hash.
            counts[of(Uuid::from_u128(i), shards) as usize] += 1;
        }
        let expected = tasks as u32 / shards;
        for (shard, count) in counts.iter().enumerate() {
            assert!(
                count.abs_diff(expected) < expected / 5,
                "shard {shard} got {count} of {tasks}: {counts:?}"
            );
        }
    }
}
