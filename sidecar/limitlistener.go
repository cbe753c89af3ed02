package sidecar

import (
	"net"
	"sync"
)

// limitListener bounds the open connections of a listener, like
// x/net/netutil.LimitListener, but its connections can be unwrapped, so the
// Unix socket's peer credentials stay reachable for the handshake.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func newLimitListener(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// Unwrap returns the underlying connection.
func (c *limitConn) Unwrap() net.Conn { return c.Conn }

// unwrapConn peels wrappers that have an Unwrap method.
func unwrapConn(c net.Conn) net.Conn {
	for {
		u, ok := c.(interface{ Unwrap() net.Conn })
		if !ok {
			return c
		}
		c = u.Unwrap()
	}
}
