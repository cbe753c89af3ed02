// Package capture reads packets from an AF_PACKET TPACKET_V3 ring.
package capture
