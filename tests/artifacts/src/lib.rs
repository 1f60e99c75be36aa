//! Paths of the example policies and hostile fixtures, compiled to
//! WebAssembly components by this crate's build script. Tests and benches
//! depend on this crate so the components are built once per build, not once
//! per test.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
