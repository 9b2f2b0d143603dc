package entry

import "time"

// FileInfo describes a file or directory as the remote lists or stats it.
type FileInfo struct {
	Name    string    // base name (for Stat, the last element of the path)
	Size    int64     // bytes; 0 for directories
	ModTime time.Time // zero when the server did not report one
	IsDir   bool
}

// MtimeMatch compares a remote modification time with a local one at the
// server's precision: servers truncate to it (MDTM and SFTP v3 keep whole
// seconds), so the local time is truncated the same way first.
func MtimeMatch(remoteT, localT time.Time, prec time.Duration) bool {
	if prec <= 0 {
		prec = time.Nanosecond
	}
	d := remoteT.Sub(localT.Truncate(prec))
	if d < 0 {
		d = -d
	}
	return d < prec
}
