package testrig

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

// Disk is a size-limited tmpfs owned by the test account, standing in for a
// remote file system that runs out of space.
type Disk struct {
	Path string // mount point; usable as FTPOptions.Root or SSHOptions.Root

	closed bool
}

// NewSmallDisk mounts a tmpfs of size bytes (rounded up to whole pages by
// the kernel) on a fresh temp dir and gives it to the account. The caller
// must call Close; the mount would otherwise outlive the test process.
func NewSmallDisk(size int64) (*Disk, error) {
	if err := checkRoot(); err != nil {
		return nil, err
	}
	if size <= 0 {
		return nil, fmt.Errorf("testrig: disk size %d must be positive", size)
	}
	acct, err := EnsureAccount()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ferry-disk-")
	if err != nil {
		return nil, fmt.Errorf("testrig: %w", err)
	}
	// mode/uid/gid set the tmpfs root itself, so no chown race after mounting.
	data := fmt.Sprintf("size=%d,mode=0755,uid=%d,gid=%d", size, acct.UID, acct.GID)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, data); err != nil {
		os.Remove(dir)
		if errors.Is(err, syscall.EPERM) {
			return nil, unavailable("mounting a tmpfs needs CAP_SYS_ADMIN (run the container with it): %v", err)
		}
		return nil, fmt.Errorf("testrig: mount tmpfs on %s: %w", dir, err)
	}
	if err := makeReachable(dir); err != nil {
		d := &Disk{Path: dir}
		_ = d.Close()
		return nil, fmt.Errorf("testrig: %w", err)
	}
	return &Disk{Path: dir}, nil
}

// Close unmounts and removes the mount point. A server still holding files
// open on it would make a plain unmount fail with EBUSY, so it falls back to
// a lazy detach, which frees the space once the last file is closed.
func (d *Disk) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	err := syscall.Unmount(d.Path, 0)
	if errors.Is(err, syscall.EBUSY) {
		err = syscall.Unmount(d.Path, syscall.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("testrig: unmount %s: %w", d.Path, err)
	}
	return os.Remove(d.Path)
}

// SmallDisk mounts a tmpfs of the given size (bytes) on a fresh temp dir,
// chowns it to the account, and unmounts it at Cleanup. For "remote disk
// full" tests.
func SmallDisk(t testing.TB, size int64) string {
	t.Helper()
	d, err := NewSmallDisk(size)
	if err != nil {
		failOrSkip(t, err)
		return ""
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return d.Path
}
