//! The wasmtime engine: one per process, configured for many short
//! evaluations, and the epoch ticker that enforces deadlines.

use std::thread;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. Deadlines are whole ticks, so an evaluation
/// is stopped at most one tick after its `timeout_ms`; 5 ms keeps that slack
/// small while the ticker thread stays idle almost all the time.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Largest memory a policy may be given (manifest `memory_mib` tops out at
/// 1024); the pool sizes its slots for this.
const MAX_MEMORY_BYTES: usize = 1 << 30;

/// Instance slots in the pool: bounds concurrent evaluations, not policies.
const POOL_INSTANCES: u32 = 1000;

/// Builds the engine, pooling instances when the address space can be
/// reserved and allocating on demand otherwise.
pub fn build_engine(pooling: bool) -> Result<Engine, wasmtime::Error> {
    if pooling {
        match Engine::new(&config(Some(pool()))) {
            Ok(engine) => return Ok(engine),
            Err(error) => tracing::warn!(
                error = %error,
                "could not reserve the instance pool; allocating instances on demand"
            ),
        }
    }
    Engine::new(&config(None))
}

fn config(pool: Option<PoolingAllocationConfig>) -> Config {
    let mut config = Config::new();
    // Deadlines: a ticker thread bumps the epoch; each store gets a deadline
    // in ticks. Cheaper than fuel and independent of what the guest runs.
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    if let Some(pool) = pool {
        // Pooling makes a fresh instance per evaluation cheap: slots are
        // reused and copy-on-write memory images reset them.
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

fn pool() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 4)
        .total_memories(POOL_INSTANCES)
        .total_tables(POOL_INSTANCES * 4)
        .max_memory_size(MAX_MEMORY_BYTES)
        // Keeping the first pages of a slot resident avoids page faults on
        // every instantiation; beyond that, memory is returned to the OS.
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(512 << 10)
        // Where the kernel supports it, reset only the pages actually dirtied.
        .pagemap_scan(Enabled::Auto);
    pool
}

/// Starts the thread that advances the engine's epoch every [`EPOCH_TICK`].
/// It holds only a weak reference and stops once the engine is dropped.
pub fn start_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    thread::Builder::new()
        .name("wcp-epoch".into())
        .spawn(move || {
            loop {
                thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
}

/// Epoch ticks for a deadline: rounded up, plus one because the first tick
/// may come at any moment after the deadline is set.
pub fn deadline_ticks(timeout: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos();
    let ticks = timeout.as_nanos().div_ceil(tick);
    u64::try_from(ticks).unwrap_or(u64::MAX - 1).max(1) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_to_whole_ticks() {
        assert_eq!(deadline_ticks(Duration::from_millis(100)), 21);
        assert_eq!(deadline_ticks(Duration::from_millis(1)), 2);
        assert_eq!(deadline_ticks(Duration::from_millis(0)), 2);
        assert_eq!(deadline_ticks(Duration::from_millis(7)), 3);
    }
}
