// Package entry owns the vocabulary of a mirrored path shared by every stage:
// what a listing says of a remote path (FileInfo), the names ferry gives its
// temporary uploads and conflict copies, and what the registry records of a
// path (Entry, with its State and pending Action).
//
// It sits below every other package of ferry and imports none of them, so a
// stage that only needs to speak of a path does not have to depend on the
// registry's database or on the remote layer's connections to do so.
package entry
