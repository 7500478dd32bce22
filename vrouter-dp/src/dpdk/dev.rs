//! Virtual device hot-plug and removal at run time.

use std::ffi::CString;

use super::error::DpdkError;
use super::port::Port;

/// Probes a device from a devargs string (e.g. `net_ring0` or
/// `net_vhost0,iface=/run/vr/p1.sock,client=1`) and returns its port.
#[cold]
pub fn probe(devargs: &str) -> Result<Port, DpdkError> {
    let c = CString::new(devargs).map_err(|_| DpdkError::NulInArgument(devargs.to_owned()))?;
    // SAFETY: c is a valid C string for the call; DPDK copies what it keeps.
    let ret = unsafe { dpdk_sys::rte_dev_probe(c.as_ptr()) };
    if ret < 0 {
        return Err(DpdkError::Device {
            devargs: devargs.to_owned(),
            op: "probe",
            errno: ret,
            reason: super::strerror(ret),
        });
    }
    let name = devargs.split(',').next().unwrap_or(devargs);
    Port::by_name(name)
}

/// Stops and closes `port`, then removes its virtual device from the vdev bus.
#[cold]
pub fn remove(port: Port) -> Result<(), DpdkError> {
    let name = port.name().to_owned();
    port.close()?;
    let bus = CString::new("vdev").map_err(|_| DpdkError::NulInArgument("vdev".into()))?;
    let dev = CString::new(name.as_str()).map_err(|_| DpdkError::NulInArgument(name.clone()))?;
    // SAFETY: both are valid C strings for the call; the port was closed above.
    let ret = unsafe { dpdk_sys::rte_eal_hotplug_remove(bus.as_ptr(), dev.as_ptr()) };
    if ret < 0 {
        return Err(DpdkError::Device {
            devargs: name,
            op: "remove",
            errno: ret,
            reason: super::strerror(ret),
        });
    }
    Ok(())
}
