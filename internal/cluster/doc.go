// Package cluster lets several amtd instances share one fleet through one
// PostgreSQL database (spec/mps.md §9).
//
// A CIRA connection lives in exactly one process, so every request that
// needs it must be executed there. Two parts make that work:
//
//   - Node: the instance's lease. Join claims a row in the instances table
//     (ID, the internal address peers reach it at, a random incarnation),
//     Run renews it periodically and reaps the leases of instances that
//     stopped renewing (their devices are recorded disconnected), Leave
//     releases it on graceful shutdown. A restarted instance clears what
//     its previous incarnation recorded. Nothing is written per keepalive:
//     one lease renewal per instance per interval carries the liveness of
//     all its connections.
//
//   - Forwarder: an http.Handler middleware. For a device-specific request
//     that needs the device's CIRA connection (/api/v1/amt/*, the devices
//     disconnect/redirectstatus/refresh routes, the relay WebSocket), when
//     the device is not connected here but a live peer holds it, the
//     request — or the upgraded WebSocket — is proxied to that peer, per
//     request (not per TCP connection), with the original headers
//     (Authorization, Sec-WebSocket-Protocol) and a hop header so that it is
//     never forwarded twice. Otherwise the local handler runs (it may reach
//     the device on the LAN, or answer MPS's 404).
//
// Crashed instances: device lists read the connection status from the
// device records, which a reaper (every live instance, every renewal
// interval) corrects once the crashed instance's lease has expired; the
// owner lookup used for forwarding checks the lease itself, so no request
// is forwarded to an instance whose lease has expired. Reaping in a few
// writes when an instance dies keeps the device queries (lists, filters,
// counts, stats) unchanged and index-friendly, where a read-side check
// would join the lease table into every one of them.
package cluster
