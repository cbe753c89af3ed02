//go:build !linux

package kubetest

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }

func tempBase() string { return "" }
