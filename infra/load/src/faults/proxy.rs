//! A fault-injecting TCP proxy on loopback, controlled in-process: it passes bytes both
//! ways, refuses connections (its port closed, live connections cut), or holds every chunk
//! of the upstream's answers back for a while before passing it on.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    /// The port is closed (connections are refused) and open connections are cut.
    Refuse,
    /// Answers reach the client this much later than the upstream sent them.
    Delay(Duration),
}

pub struct FaultProxy {
    address: SocketAddr,
    mode: watch::Sender<Mode>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let (mode, watcher) = watch::channel(Mode::Pass);
        let task = tokio::spawn(accept(listener, address, upstream, watcher));
        Ok(FaultProxy {
            address,
            mode,
            task,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(
    mut listener: TcpListener,
    address: SocketAddr,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
) {
    loop {
        if *mode.borrow_and_update() == Mode::Refuse {
            drop(listener);
            while *mode.borrow_and_update() == Mode::Refuse {
                if mode.changed().await.is_err() {
                    return;
                }
            }
            listener = match rebind(address).await {
                Some(listener) => listener,
                None => return,
            };
        }
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((client, _)) = accepted {
                    tokio::spawn(connection(client, upstream, mode.clone()));
                }
            }
            changed = mode.changed() => if changed.is_err() { return },
        }
    }
}

/// Takes the port back after a refusal; tries for a few seconds.
async fn rebind(address: SocketAddr) -> Option<TcpListener> {
    for _ in 0..50 {
        if let Ok(listener) = TcpListener::bind(address).await {
            return Some(listener);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

async fn connection(client: TcpStream, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = tokio::io::copy(&mut client_read, &mut server_write);
    let answers = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let read = server_read.read(&mut buffer).await?;
            if read == 0 {
                return io::Result::Ok(());
            }
            let now = *mode.borrow();
            if let Mode::Delay(delay) = now {
                tokio::time::sleep(delay).await;
            }
            client_write.write_all(&buffer[..read]).await?;
        }
    };
    let mut refused = mode.clone();
    let cut = async move {
        while *refused.borrow_and_update() != Mode::Refuse {
            if refused.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = requests => {}
        _ = answers => {}
        _ = cut => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// An upstream on loopback that answers each connection's first line with "pong".
    async fn upstream() -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 64];
                    while let Ok(n) = socket.read(&mut buffer).await {
                        if n == 0 || socket.write_all(b"pong").await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (address, task)
    }

    async fn ping(address: SocketAddr) -> io::Result<Vec<u8>> {
        let mut socket = TcpStream::connect(address).await?;
        socket.write_all(b"ping").await?;
        let mut answer = vec![0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), socket.read_exact(&mut answer)).await??;
        Ok(answer)
    }

    #[tokio::test]
    async fn passes_refuses_and_delays_as_told() {
        let (upstream, server) = upstream().await;
        let proxy = FaultProxy::start(upstream).await.unwrap();

        assert_eq!(ping(proxy.address()).await.unwrap(), b"pong");

        proxy.set(Mode::Refuse);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let refused = ping(proxy.address()).await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);

        proxy.set(Mode::Delay(Duration::from_millis(300)));
        let started = Instant::now();
        let mut answered = None;
        for _ in 0..50 {
            if let Ok(answer) = ping(proxy.address()).await {
                answered = Some(answer);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(answered.as_deref(), Some(&b"pong"[..]));
        assert!(started.elapsed() >= Duration::from_millis(300));

        proxy.set(Mode::Pass);
        assert_eq!(ping(proxy.address()).await.unwrap(), b"pong");
        server.abort();
    }
}
