//! A raw pointer that the tasks of one parallel loop share. Its own file (std only) so the
//! probes that include the kernels by path (`examples/int8_probe.rs`) can include it too.

/// A raw pointer that the tasks of one parallel loop share, each only reading or writing a
/// part no other task touches (the caller's `SAFETY` says which). Taken through `ptr`, so
/// closures capture this `Send` wrapper, not the raw pointer.
#[derive(Clone, Copy)]
pub(crate) struct Shared<T>(pub(crate) *mut T);
// SAFETY: see the type: tasks never touch the same element mutably.
unsafe impl<T> Send for Shared<T> {}
// SAFETY: as for Send.
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    pub(crate) fn ptr(self) -> *mut T {
        self.0
    }
}
