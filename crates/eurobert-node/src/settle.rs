//! Promises settled from the model's threads through one threadsafe function per JavaScript
//! environment (native builds).
//!
//! napi-rs' deferreds each create (and later close) their own threadsafe function: a libuv
//! handle, an environment cleanup hook and their teardown, ~50 µs of the JavaScript thread per
//! call. Here an environment makes one when its first call starts and keeps it; a call sends
//! its settlement, a closure run on the JavaScript thread, down that one channel.
//!
//! The channel keeps the event loop alive only while a call is pending (referenced at the first,
//! unreferenced after the last), as a pending promise of napi-rs' own would. When the
//! environment tears down (a worker thread ends), a cleanup hook closes the channel before Node
//! frees the threadsafe function: a model thread that finishes afterwards finds it closed and
//! drops its settlement instead of calling into freed memory.

use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::*;
use napi::sys;

/// What runs on the JavaScript thread: settles one promise.
type Settlement = Box<dyn FnOnce(Env) -> Result<()> + Send>;

/// The threadsafe function while it may still be called; `None` once its environment tears down.
struct Channel(Mutex<Option<Handle>>);

#[derive(Clone, Copy)]
struct Handle(sys::napi_threadsafe_function);
// SAFETY: Node-API allows calling a threadsafe function from any thread; the mutex around it
// keeps it from being called after the cleanup hook released it.
unsafe impl Send for Handle {}

impl Channel {
    fn handle(&self) -> MutexGuard<'_, Option<Handle>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One environment's channel, on its JavaScript thread, with its count of pending calls.
struct Local {
    env: sys::napi_env,
    channel: Arc<Channel>,
    tsfn: sys::napi_threadsafe_function,
    pending: usize,
}

thread_local! {
    /// An environment lives on one thread, and a thread may (rarely) hold more than one.
    static LOCALS: RefCell<Vec<Local>> = const { RefCell::new(Vec::new()) };
}

struct Deferred(sys::napi_deferred);
// SAFETY: the deferred is only touched on the JavaScript thread, inside the settlement the
// channel runs there; other threads merely carry it.
unsafe impl Send for Deferred {}

impl Deferred {
    /// A method, so a closure captures the whole `Send` wrapper, not its field.
    fn raw(&self) -> sys::napi_deferred {
        self.0
    }
}

/// Settles a promise from any thread; made on the JavaScript thread by `promise`.
pub struct Settler {
    channel: Arc<Channel>,
    deferred: Deferred,
}

/// A new promise of `env`, and the settler a model thread completes it with.
pub fn promise(env: &Env) -> Result<(Settler, sys::napi_value)> {
    let raw = env.raw();
    let channel = LOCALS.with_borrow_mut(|locals| -> Result<Arc<Channel>> {
        let at = match locals.iter().position(|l| l.env == raw) {
            Some(at) => at,
            None => {
                locals.push(open(raw)?);
                locals.len() - 1
            }
        };
        let local = &mut locals[at];
        if local.pending == 0 {
            // SAFETY: `raw` is this thread's live environment and `local.tsfn` its open channel.
            check(unsafe { sys::napi_ref_threadsafe_function(raw, local.tsfn) })?;
        }
        local.pending += 1;
        Ok(Arc::clone(&local.channel))
    })?;
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    // SAFETY: `raw` is this thread's live environment; both out-pointers are valid.
    if let Err(e) = check(unsafe { sys::napi_create_promise(raw, &mut deferred, &mut promise) }) {
        done(raw);
        return Err(e);
    }
    Ok((Settler { channel, deferred: Deferred(deferred) }, promise))
}

impl Settler {
    /// Settles the promise with what `settle` makes on the JavaScript thread. Dropped unsent
    /// when the environment is gone.
    pub fn send(self, settle: impl FnOnce(Env) -> Result<sys::napi_value> + Send + 'static) {
        let deferred = self.deferred;
        let job: Settlement = Box::new(move |env| {
            let raw = env.raw();
            let outcome = match catch_unwind(AssertUnwindSafe(|| settle(env))) {
                Ok(outcome) => outcome,
                Err(panic) => Err(crate::panicked("returning the result", panic)),
            };
            match outcome {
                // SAFETY: on the JavaScript thread of `raw`, which made `deferred` and has not settled it.
                Ok(value) => check(unsafe { sys::napi_resolve_deferred(raw, deferred.raw(), value) }),
                Err(e) => {
                    // SAFETY: `raw` is the live environment this settlement runs in.
                    let error = unsafe { ToNapiValue::to_napi_value(raw, e) }?;
                    // SAFETY: as above; `deferred` is settled exactly once, here.
                    check(unsafe { sys::napi_reject_deferred(raw, deferred.raw(), error) })
                }
            }
        });
        let data = Box::into_raw(Box::new(job)).cast::<c_void>();
        let handle = self.channel.handle();
        let status = match *handle {
            // SAFETY: the mutex is held, so the cleanup hook has not released the function.
            Some(Handle(tsfn)) => unsafe { sys::napi_call_threadsafe_function(tsfn, data, sys::ThreadsafeFunctionCallMode::nonblocking) },
            None => sys::Status::napi_closing,
        };
        drop(handle);
        if status != sys::Status::napi_ok {
            // SAFETY: the box was made just above and the call did not take it.
            drop(unsafe { Box::from_raw(data.cast::<Settlement>()) });
        }
    }
}

/// Makes `env`'s channel, unreferenced until a call is pending.
fn open(env: sys::napi_env) -> Result<Local> {
    let channel = Arc::new(Channel(Mutex::new(None)));
    let mut name = ptr::null_mut();
    let label = "eurobert";
    // SAFETY: `env` is this thread's live environment; `label` outlives the call.
    check(unsafe { sys::napi_create_string_utf8(env, label.as_ptr().cast(), label.len() as isize, &mut name) })?;
    let finalize_data = Arc::into_raw(Arc::clone(&channel)) as *mut c_void;
    let mut tsfn = ptr::null_mut();
    // SAFETY: every pointer is valid; `finalized` takes back `finalize_data`'s reference.
    let status = unsafe {
        sys::napi_create_threadsafe_function(
            env,
            ptr::null_mut(),
            ptr::null_mut(),
            name,
            0,
            1,
            finalize_data,
            Some(finalized),
            ptr::null_mut(),
            Some(run),
            &mut tsfn,
        )
    };
    if let Err(e) = check(status) {
        // SAFETY: no function was made, so `finalized` never takes this reference back.
        drop(unsafe { Arc::from_raw(finalize_data as *const Channel) });
        return Err(e);
    }
    *channel.handle() = Some(Handle(tsfn));
    let hook_data = Arc::into_raw(Arc::clone(&channel)) as *mut c_void;
    // Registered after the threadsafe function's own hook, so it runs before it.
    // SAFETY: `teardown` takes back `hook_data`'s reference.
    if let Err(e) = check(unsafe { sys::napi_add_env_cleanup_hook(env, Some(teardown), hook_data) }) {
        // SAFETY: not registered, so nothing else takes it back.
        drop(unsafe { Arc::from_raw(hook_data as *const Channel) });
        close(&channel);
        return Err(e);
    }
    // An unreferenced channel at rest: it holds the loop only while a call is pending. (Were
    // this to fail, the hook registered above still closes the channel at teardown.)
    // SAFETY: `tsfn` was made just above, in `env`.
    if let Err(e) = check(unsafe { sys::napi_unref_threadsafe_function(env, tsfn) }) {
        close(&channel);
        return Err(e);
    }
    Ok(Local { env, channel, tsfn, pending: 0 })
}

/// Closes the channel: no thread calls the threadsafe function after this, and Node may free it.
fn close(channel: &Channel) {
    if let Some(Handle(tsfn)) = channel.handle().take() {
        // SAFETY: the mutex is held and the handle taken: no thread calls the function again.
        unsafe { sys::napi_release_threadsafe_function(tsfn, sys::ThreadsafeFunctionReleaseMode::abort) };
    }
}

/// One call of `env` settled: the loop may end once none is pending.
fn done(env: sys::napi_env) {
    LOCALS.with_borrow_mut(|locals| {
        if let Some(local) = locals.iter_mut().find(|l| l.env == env) {
            local.pending -= 1;
            if local.pending == 0 {
                // SAFETY: on `env`'s own thread, with the channel still open (the teardown hook drops the entry).
                unsafe { sys::napi_unref_threadsafe_function(env, local.tsfn) };
            }
        }
    });
}

/// Runs a settlement on the JavaScript thread; `env` is null when the queue is drained at
/// teardown, and the settlement is only dropped.
unsafe extern "C" fn run(env: sys::napi_env, _js_callback: sys::napi_value, _context: *mut c_void, data: *mut c_void) {
    // SAFETY: `send` boxed every item it queued.
    let job = unsafe { Box::from_raw(data.cast::<Settlement>()) };
    if env.is_null() {
        return;
    }
    // A settlement never unwinds (it catches its own panics), and a failed settle has no one
    // left to tell.
    let _ = job(Env::from_raw(env));
    done(env);
}

unsafe extern "C" fn teardown(data: *mut c_void) {
    // SAFETY: `open` made this reference for the hook.
    let channel = unsafe { Arc::from_raw(data as *const Channel) };
    close(&channel);
    LOCALS.with_borrow_mut(|locals| locals.retain(|l| !Arc::ptr_eq(&l.channel, &channel)));
}

unsafe extern "C" fn finalized(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `open` made this reference for the finalizer.
    let channel = unsafe { Arc::from_raw(data as *const Channel) };
    channel.handle().take();
}

fn check(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::from(status), "a Node-API call failed while settling a promise".to_string()))
    }
}
