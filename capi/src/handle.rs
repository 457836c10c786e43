//! Opaque handles: a boxed value behind a magic number (checked before every use, so that
//! null, foreign or freed-and-zeroed pointers are reported instead of dereferenced as the
//! wrong thing) and a busy flag (so that two calls on one mutable handle at once, or a call
//! from inside a generation callback on the handle being generated with, fail with
//! `EDGELM_STATUS_BUSY` instead of aliasing it), and a cancel flag that another thread may set
//! while a call holds the handle.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{Error, ErrorKind};

/// A kind of handle: its magic number, the name used in error messages and the opaque C type
/// whose pointers stand for it.
pub(crate) trait Kind: Sized {
    const MAGIC: u64;
    const NAME: &'static str;
    type C;
}

/// The allocation a handle points to. `repr(C)` puts the magic first, at the same offset for
/// every kind, so that a handle of one kind passed as another is recognised.
#[repr(C)]
pub(crate) struct Handle<T> {
    magic: AtomicU64,
    busy: AtomicBool,
    value: UnsafeCell<T>,
    /// Asks the call in progress to stop early (read by the calls that look at it).
    cancel: Arc<AtomicBool>,
}

/// Exclusive access to a handle's value until dropped.
pub(crate) struct Guard<'a, T> {
    handle: &'a Handle<T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the busy flag: no other reference to the value exists.
        unsafe { &*self.handle.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only borrow through the guard.
        unsafe { &mut *self.handle.value.get() }
    }
}

impl<T> Guard<'_, T> {
    /// The handle's cancel flag, cleared: a call that honours it starts with this.
    pub(crate) fn fresh_cancel_flag(&self) -> Arc<AtomicBool> {
        self.handle.cancel.store(false, Ordering::Relaxed);
        Arc::clone(&self.handle.cancel)
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.handle.busy.store(false, Ordering::Release);
    }
}

impl<T: Kind> Handle<T> {
    /// Boxes `value` and returns the pointer handed to C.
    pub(crate) fn into_raw(value: T) -> *mut T::C {
        let handle = Box::new(Handle {
            magic: AtomicU64::new(T::MAGIC),
            busy: AtomicBool::new(false),
            value: UnsafeCell::new(value),
            cancel: Arc::default(),
        });
        Box::into_raw(handle).cast()
    }

    /// The handle behind `ptr`, after checking that it is non-null, aligned and carries the
    /// magic number of `T`.
    ///
    /// # Safety
    /// `ptr` is null or points to at least 8 readable bytes (any live edgelm handle does; a
    /// freed one has its magic cleared, but reading it is only valid while the allocator has
    /// not reused the memory: freeing a handle twice is reported on a best-effort basis).
    unsafe fn check<'a>(ptr: *const T::C) -> Result<&'a Handle<T>, Error> {
        let h = ptr.cast::<Handle<T>>();
        if h.is_null() {
            return Err(Error::new(
                ErrorKind::NullArgument,
                format!("the {} handle is NULL", T::NAME),
            ));
        }
        let invalid = || {
            Error::new(
                ErrorKind::InvalidHandle,
                format!("not a valid {} handle", T::NAME),
            )
        };
        if !h.is_aligned() {
            return Err(invalid());
        }
        // SAFETY: non-null and aligned; readable per this function's contract. The magic is
        // the first field (`repr(C)`), so only those 8 bytes are read before it matches.
        let magic = unsafe { &*h.cast::<AtomicU64>() }.load(Ordering::Acquire);
        if magic != T::MAGIC {
            return Err(invalid());
        }
        // SAFETY: the magic says this is a live `Handle<T>` made by `into_raw`.
        Ok(unsafe { &*h })
    }

    /// Exclusive access to the value, or `Busy` while another call holds it.
    ///
    /// # Safety
    /// As [`Handle::check`].
    pub(crate) unsafe fn lock<'a>(ptr: *const T::C) -> Result<Guard<'a, T>, Error> {
        // SAFETY: forwarded contract.
        let handle = unsafe { Handle::check(ptr)? };
        if handle.busy.swap(true, Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Busy,
                format!(
                    "the {} is in use by another call (one call at a time per handle, and none from inside its own callback)",
                    T::NAME
                ),
            ));
        }
        Ok(Guard { handle })
    }

    /// Sets the handle's cancel flag; it needs no lock, so any thread may call it while
    /// another call holds the handle.
    ///
    /// # Safety
    /// As [`Handle::check`].
    pub(crate) unsafe fn cancel(ptr: *const T::C) -> Result<(), Error> {
        // SAFETY: forwarded contract.
        let handle = unsafe { Handle::<T>::check(ptr)? };
        handle.cancel.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Frees the handle: NULL is accepted (nothing to do), a busy handle is not freed.
    ///
    /// # Safety
    /// As [`Handle::check`]; after success the pointer must not be used again.
    pub(crate) unsafe fn free(ptr: *mut T::C) -> Result<(), Error> {
        if ptr.is_null() {
            return Ok(());
        }
        // SAFETY: forwarded contract.
        let guard = unsafe { Handle::<T>::lock(ptr)? };
        guard.handle.magic.store(0, Ordering::Release);
        std::mem::forget(guard);
        // SAFETY: the pointer came from `Box::into_raw` in `into_raw` (the magic matched) and
        // the busy flag, now never released, keeps every other call out.
        drop(unsafe { Box::from_raw(ptr.cast::<Handle<T>>()) });
        Ok(())
    }
}

impl<T: Kind + Sync> Handle<T> {
    /// Shared access, for kinds that are never mutated after creation (the model).
    ///
    /// # Safety
    /// As [`Handle::check`].
    pub(crate) unsafe fn shared<'a>(ptr: *const T::C) -> Result<&'a T, Error> {
        // SAFETY: forwarded contract.
        let handle = unsafe { Handle::check(ptr)? };
        // SAFETY: values of shared kinds are only ever borrowed immutably (no `lock` is taken
        // on them except by `free`, which callers must not race with other calls).
        Ok(unsafe { &*handle.value.get() })
    }
}
