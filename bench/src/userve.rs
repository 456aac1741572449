//! The benchmark server on ustack over a TUN device (`userve`): the same four ports as
//! `kserve` (see `proto`) plus the in-place sink on 5005, and cwnd/RTT sampled from
//! `TcpStream::info()` on the source port for the loss chart. One current-thread runtime,
//! like `bench_server`. With `--offload` the TUN is opened with `IFF_VNET_HDR` and
//! TSO/checksum offloads (`TunOptions::offload`).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::spawn;
use ustack::net::{TcpListener, TcpStream};
use ustack::Stack;
use ustack::TunOptions;

use crate::kernel::write_samples;
use crate::proto;
use crate::util::current_thread_rt;

/// `(cwnd in segments, smoothed RTT in µs, mss)` from `TcpStream::info()`.
pub fn ustack_info(s: &TcpStream) -> Option<(u32, u32, u32)> {
    let i = s.info().ok()?;
    Some((i.snd_cwnd, i.rtt.as_micros() as u32, i.snd_mss))
}

/// Serves the four ports on a stack attached to TUN `tun` with address `addr`.
pub fn userve(args: crate::UserveArgs) -> io::Result<()> {
    let crate::UserveArgs {
        tun,
        addr,
        gateway,
        mtu,
        lifetime,
        info_log,
        offload,
        pacing,
        rx_thread,
    } = args;
    current_thread_rt().block_on(async move {
        let mut b = Stack::builder()
            .tun_with(TunOptions {
                name: tun.clone(),
                mtu: Some(mtu),
                host_addr: None,
                up: true,
                offload,
                tap: None,
                rx_thread,
            })
            .addr(
                addr.parse()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e:?}")))?,
            )
            .tcp_config(ustack::TcpConfig {
                pacing,
                ..ustack::TcpConfig::default()
            });
        if let Some(gw) = gateway {
            b = b.gateway(gw);
        }
        let stack = b.build().await?;
        let info_log = Arc::new(info_log);
        let ports = [
            proto::SINK,
            proto::ECHO,
            proto::CLOSE,
            proto::SOURCE,
            proto::SINK_IN_PLACE,
        ];
        for port in ports {
            let l =
                TcpListener::bind_with(&stack, std::net::SocketAddr::from(([0, 0, 0, 0], port)))
                    .await?;
            let info_log = info_log.clone();
            spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    let _ = s.set_nodelay(port == proto::ECHO);
                    let info_log = info_log.clone();
                    spawn(async move {
                        match port {
                            proto::SINK => {
                                let _ = proto::sink(s).await;
                            }
                            proto::ECHO => {
                                let _ = proto::echo(s).await;
                            }
                            proto::CLOSE => proto::close_one(s).await,
                            proto::SINK_IN_PLACE => {
                                let _ = crate::mem::sink_in_place(s).await;
                            }
                            _ => {
                                let mut samples = Vec::new();
                                proto::source(
                                    &s,
                                    Duration::from_secs(600),
                                    Duration::from_millis(50),
                                    |s, t| {
                                        if let Some((c, r, m)) = ustack_info(s) {
                                            samples.push((t.as_secs_f64() * 1e3, c, r, m));
                                        }
                                    },
                                )
                                .await;
                                write_samples(&info_log, "ustack", &samples);
                            }
                        }
                    });
                }
            });
        }
        println!(
            "READY userve {tun} {addr} offload={offload} pacing={pacing} rx_thread={rx_thread}"
        );
        tokio::time::sleep(Duration::from_secs_f64(lifetime)).await;
        let st = stack.stats();
        println!("STATS {}", st.to_json());
        stack.shutdown().await;
        Ok(())
    })
}

impl proto::TryWrite for TcpStream {
    fn writable(&self) -> impl std::future::Future<Output = io::Result<()>> {
        TcpStream::writable(self)
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, buf)
    }
}
