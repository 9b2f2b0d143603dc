package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"ferry/control"
)

// collector turns a status snapshot into Prometheus metrics at each scrape,
// so the figures are the ones `ferry status` shows, counted once.
type collector struct{ d *Daemon }

var (
	descState     = prometheus.NewDesc("ferry_job_state", "1 for the state the job is in.", []string{"job", "state"}, nil)
	descQueue     = prometheus.NewDesc("ferry_queue_items", "Items waiting or in flight, by class.", []string{"job", "class"}, nil)
	descFiles     = prometheus.NewDesc("ferry_files_transferred_total", "Files uploaded since the daemon started.", []string{"job"}, nil)
	descBytes     = prometheus.NewDesc("ferry_bytes_transferred_total", "Bytes uploaded since the daemon started.", []string{"job"}, nil)
	descTouched   = prometheus.NewDesc("ferry_files_touched_total", "Files whose remote mtime was set without sending bytes.", []string{"job"}, nil)
	descMoved     = prometheus.NewDesc("ferry_files_moved_total", "Local moves made as remote renames.", []string{"job"}, nil)
	descDeleted   = prometheus.NewDesc("ferry_files_deleted_total", "Remote files and directories deleted.", []string{"job"}, nil)
	descFailures  = prometheus.NewDesc("ferry_failures_total", "Items that failed after their retries.", []string{"job"}, nil)
	descLive      = prometheus.NewDesc("ferry_live_changes_total", "Live changes queued from the watcher.", []string{"job"}, nil)
	descFailed    = prometheus.NewDesc("ferry_failed_files", "Files in the failed state now.", []string{"job"}, nil)
	descWorkers   = prometheus.NewDesc("ferry_workers", "Workers (connections) now.", []string{"job"}, nil)
	descTarget    = prometheus.NewDesc("ferry_workers_target", "Workers the pool aims for.", []string{"job"}, nil)
	descProtected = prometheus.NewDesc("ferry_protected_hours", "1 inside protected hours (bulk work paused).", []string{"job"}, nil)
	descScanAt    = prometheus.NewDesc("ferry_last_scan_timestamp_seconds", "When the last full scan started.", []string{"job"}, nil)
	descScanTook  = prometheus.NewDesc("ferry_last_scan_duration_seconds", "How long the last full scan took, its uploads included.", []string{"job"}, nil)

	descSilent = prometheus.NewDesc("ferry_server_silent_seconds", "How long the server has not answered while work waits on it; 0 while it answers.", []string{"job"}, nil)
	descLost   = prometheus.NewDesc("ferry_sessions_lost_total", "Sessions that ended under an item (reset, 421, 500 OOPS, timeout) and were redialed.", []string{"job"}, nil)

	// The Git stage's, for the jobs that have one.
	descGitWaiting  = prometheus.NewDesc("ferry_git_waiting_files", "Paths shipped and not yet committed by the Git stage.", []string{"job"}, nil)
	descGitUnpushed = prometheus.NewDesc("ferry_git_unpushed_batches", "Batches committed and not yet pushed.", []string{"job"}, nil)
	descGitCommits  = prometheus.NewDesc("ferry_git_commits_total", "Commits the Git stage made since the job's session opened.", []string{"job"}, nil)
	descGitPushes   = prometheus.NewDesc("ferry_git_pushes_total", "Pushes that succeeded since the job's session opened.", []string{"job"}, nil)
	descGitStopped  = prometheus.NewDesc("ferry_git_stopped", "1 while the Git stage is stopped by a push it cannot make (it waits for `ferry sync --git`).", []string{"job"}, nil)
	descGitCommitAt = prometheus.NewDesc("ferry_git_last_commit_timestamp_seconds", "When the Git stage made its last commit.", []string{"job"}, nil)
	descGitPushAt   = prometheus.NewDesc("ferry_git_last_push_timestamp_seconds", "When the Git stage last pushed.", []string{"job"}, nil)
)

var jobStates = []string{StateStarting, StateIdle, StateScanning, StateSyncing, StatePaused, StateDraining, StateFailed, StateWaiting}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descQueue, descFiles, descBytes, descTouched, descMoved, descDeleted,
		descFailures, descLive, descFailed, descWorkers, descTarget, descProtected, descScanAt, descScanTook, descSilent, descLost,
		descGitWaiting, descGitUnpushed, descGitCommits, descGitPushes, descGitStopped, descGitCommitAt, descGitPushAt} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, j := range c.d.Status(ctx).Jobs {
		collectJob(ch, j)
	}
}

func collectJob(ch chan<- prometheus.Metric, j control.JobStatus) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{j.Name}, labels...)...)
	}
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), j.Name)
	}
	for _, s := range jobStates {
		gauge(descState, b2f(j.State == s), s)
	}
	gauge(descQueue, float64(j.Queue.Live), "live")
	gauge(descQueue, float64(j.Queue.Bulk), "bulk")
	gauge(descQueue, float64(j.Queue.Pending), "pending")
	gauge(descQueue, float64(j.Queue.InFlight), "in_flight")
	counter(descFiles, j.Totals.Transferred)
	counter(descBytes, j.Totals.Bytes)
	counter(descTouched, j.Totals.Touched)
	counter(descMoved, j.Totals.Moved)
	counter(descDeleted, j.Totals.Deleted)
	counter(descFailures, j.Totals.Failed)
	counter(descLive, j.Totals.Live)
	gauge(descFailed, float64(j.FailedFiles))
	gauge(descWorkers, float64(len(j.Workers)))
	gauge(descTarget, float64(j.WorkersTarget))
	gauge(descProtected, b2f(j.Protected))
	counter(descLost, j.Totals.SessionsLost)
	silent := 0.0
	if !j.ServerSilentSince.IsZero() {
		silent = time.Since(j.ServerSilentSince).Seconds()
	}
	gauge(descSilent, silent)
	if !j.Scan.Last.IsZero() {
		gauge(descScanAt, float64(j.Scan.Last.UnixNano())/1e9)
		gauge(descScanTook, j.Scan.LastTook)
	}
	if g := j.Git; g != nil {
		gauge(descGitWaiting, float64(g.Waiting))
		gauge(descGitUnpushed, float64(g.Unpushed))
		counter(descGitCommits, g.Commits)
		counter(descGitPushes, g.Pushes)
		gauge(descGitStopped, b2f(g.Stopped))
		if !g.LastCommitAt.IsZero() {
			gauge(descGitCommitAt, float64(g.LastCommitAt.UnixNano())/1e9)
		}
		if !g.LastPushAt.IsZero() {
			gauge(descGitPushAt, float64(g.LastPushAt.UnixNano())/1e9)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// serveMetrics serves /metrics on addr until ctx ends.
func (d *Daemon) serveMetrics(ctx context.Context, addr string) (func() error, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{d}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen %s: %w", addr, err)
	}
	d.o.Log.Info("metrics", "url", "http://"+l.Addr().String()+"/metrics")
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	stop := context.AfterFunc(ctx, func() { _ = srv.Close() })
	return func() error {
		stop()
		_ = srv.Close()
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, nil
}
