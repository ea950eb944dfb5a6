//! A head seen through a hook: power cuts at an exchange boundary, exchange logs, corrupted
//! or dying readers, each written as the few calls it changes instead of a whole `Head`
//! implementation that forwards everything else.

use super::{Head, HeadError, HeadInfo, Wire};
use std::time::Duration;

/// What a wrapper changes; every call it does not override goes straight to the inner head.
pub trait Hook: Send {
    fn transmit(&mut self, inner: &mut dyn Head, apdu: &[u8]) -> Result<Wire, HeadError>;

    fn power_on(&mut self, inner: &mut dyn Head) -> Result<Vec<u8>, HeadError> {
        inner.power_on()
    }

    fn power_off(&mut self, inner: &mut dyn Head) -> Result<(), HeadError> {
        inner.power_off()
    }

    fn card_present(&mut self, inner: &mut dyn Head) -> Result<bool, HeadError> {
        inner.card_present()
    }

    fn atr(&self, inner: &dyn Head) -> Option<Vec<u8>> {
        inner.atr()
    }
}

/// The wrapped head: owned (a lab head replaced for a whole run) or borrowed (for one
/// sequence).
pub enum Inner<'a> {
    Owned(Box<dyn Head>),
    Borrowed(&'a mut dyn Head),
}

pub struct Tapped<'a, K> {
    inner: Inner<'a>,
    pub hook: K,
}

impl<K: Hook> Tapped<'static, K> {
    pub fn owned(inner: Box<dyn Head>, hook: K) -> Self {
        Tapped { inner: Inner::Owned(inner), hook }
    }
}

impl<'a, K: Hook> Tapped<'a, K> {
    pub fn borrowed(inner: &'a mut dyn Head, hook: K) -> Self {
        Tapped { inner: Inner::Borrowed(inner), hook }
    }

    pub fn inner(&mut self) -> &mut dyn Head {
        match &mut self.inner {
            Inner::Owned(h) => h.as_mut(),
            Inner::Borrowed(h) => &mut **h,
        }
    }

    fn inner_ref(&self) -> &dyn Head {
        match &self.inner {
            Inner::Owned(h) => h.as_ref(),
            Inner::Borrowed(h) => &**h,
        }
    }

    /// Split borrow: the hook and the head it wraps.
    fn parts(&mut self) -> (&mut K, &mut dyn Head) {
        let inner: &mut dyn Head = match &mut self.inner {
            Inner::Owned(h) => h.as_mut(),
            Inner::Borrowed(h) => &mut **h,
        };
        (&mut self.hook, inner)
    }
}

impl<K: Hook> Head for Tapped<'_, K> {
    fn info(&self) -> &HeadInfo {
        self.inner_ref().info()
    }

    fn card_present(&mut self) -> Result<bool, HeadError> {
        let (k, h) = self.parts();
        k.card_present(h)
    }

    fn atr(&self) -> Option<Vec<u8>> {
        self.hook.atr(self.inner_ref())
    }

    fn power_on(&mut self) -> Result<Vec<u8>, HeadError> {
        let (k, h) = self.parts();
        k.power_on(h)
    }

    fn power_off(&mut self) -> Result<(), HeadError> {
        let (k, h) = self.parts();
        k.power_off(h)
    }

    fn warm_reset(&mut self) -> Result<Vec<u8>, HeadError> {
        self.inner().warm_reset()
    }

    fn transmit(&mut self, apdu: &[u8]) -> Result<Wire, HeadError> {
        let (k, h) = self.parts();
        k.transmit(h, apdu)
    }

    fn wait_for_card(&mut self, present: bool, timeout: Duration) -> Result<bool, HeadError> {
        self.inner().wait_for_card(present, timeout)
    }

    fn exclusive(&mut self, on: bool) -> Result<bool, HeadError> {
        self.inner().exclusive(on)
    }

    fn open(&mut self) -> Result<(), HeadError> {
        self.inner().open()
    }

    fn as_virtual(&mut self) -> Option<&mut super::virtual_head::VirtualHead> {
        self.inner().as_virtual()
    }
}
