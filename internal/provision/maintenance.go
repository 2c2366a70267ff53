package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"

	"github.com/amtd-project/amtd/internal/rpcproto"
	"github.com/amtd-project/amtd/internal/store"
)

// Maintenance tasks (rpc-go v2).
const (
	TaskSyncTime       = "synctime"
	TaskSyncIP         = "syncip"
	TaskChangePassword = "changepassword"
	TaskSyncHostname   = "synchostname"
	TaskSyncDeviceInfo = "syncdeviceinfo"
)

// RPS's maintenance details.
const (
	msgNoWiredSettings     = "Device has no wired configuration settings"
	msgWirelessOnly        = "Not applicable for wireless only device"
	msgIPSynchronized      = "IPAddress already synchronized"
	msgHostnameSynchronize = "host name already synchronized"
)

// maintenance runs "rpc maintenance" (activation.md §12).
func (e *Engine) maintenance(ctx context.Context, req rpcproto.Request, conn Conn) rpcproto.Outcome {
	p, task := req.Payload, req.Command.Task
	if task == "" {
		return e.reject(ctx, req, "maintenance.validate", req.ConnID+" - missing maintenance task in message")
	}
	if p.CurrentMode <= 0 {
		return e.reject(ctx, req, "maintenance.validate", fmt.Sprintf("Device %s is in pre-provisioning mode.", p.UUID))
	}
	unlock, err := e.lockDevice(ctx, p.UUID)
	if err != nil {
		return rpcproto.Outcome{Message: busyMessage(p.UUID)}
	}
	defer unlock()
	passwords, creds, msg := e.checkOperatorPassword(ctx, p, req.Command.Force)
	if msg != "" {
		return e.reject(ctx, req, "maintenance.validate", msg)
	}
	switch task {
	case TaskSyncTime, TaskChangePassword, TaskSyncDeviceInfo:
	case TaskSyncIP:
		if p.IPConfiguration == nil {
			return e.reject(ctx, req, "maintenance.validate", req.ConnID+" - missing ipConfiguration")
		}
	case TaskSyncHostname:
		if p.HostnameInfo == nil {
			return e.reject(ctx, req, "maintenance.validate", req.ConnID+" - missing HostnameInfo")
		}
	default:
		return e.reject(ctx, req, "maintenance.validate", req.ConnID+" - unknown task "+task)
	}

	s := e.newSession(req, conn)
	step := "maintenance." + task
	s.j.Info(ctx, step, fmt.Sprintf("device mode %d, forced %v", p.CurrentMode, req.Command.Force))
	done := func(detail string, err error) rpcproto.Outcome {
		if err != nil {
			d := detail
			if d == "" {
				d = statusText(err)
			}
			s.j.FailText(ctx, step, d)
			st := task + " failed"
			if d != "" {
				st += " " + d
			}
			return rpcproto.Outcome{Message: rpcproto.StatusMessage{Status: st}.String()}
		}
		s.j.OK(ctx, step, strings.TrimSpace("completed "+detail))
		st := task + " completed succesfully"
		if detail != "" {
			st += " " + detail
		}
		return rpcproto.Outcome{Success: true, Message: rpcproto.StatusMessage{Status: st}.String()}
	}

	if task == TaskSyncDeviceInfo {
		return done(e.syncDeviceInfo(ctx, s))
	}
	if err := s.startPath(ctx, creds); err != nil {
		return done("", err)
	}
	if err := s.authenticate(ctx, passwords, creds); err != nil {
		return done("", err)
	}
	switch task {
	case TaskSyncTime:
		return done("", e.syncTime(ctx, s.client))
	case TaskSyncIP:
		return done(e.syncIP(ctx, s))
	case TaskChangePassword:
		pw := req.Command.TaskArg
		if pw == "" {
			if pw, err = RandomPassword(e.cfg.Rand); err != nil {
				return done("", err)
			}
		} else if !ValidAMTPassword(pw) {
			return done("the new password does not meet AMT's password rules", errors.New("invalid password"))
		}
		if err := s.setAdminPassword(ctx, pw, step); err != nil {
			return done("", err)
		}
		// The presence server reads the device's credentials from the
		// store on each use, so nothing else needs refreshing.
		return done("", nil)
	default: // TaskSyncHostname
		return done(e.syncHostname(ctx, s))
	}
}

// syncIP writes the host's wired IP configuration to AMT.
func (e *Engine) syncIP(ctx context.Context, s *session) (string, error) {
	ipc := s.p.IPConfiguration
	if ipc.IPAddress == "" {
		return "missing ipAddress", errors.New("missing ipAddress")
	}
	c := &configRun{e: e, t: &Target{Client: s.client, GUID: s.guid, TenantID: s.tenant}, j: s.j}
	items, err := c.ethernetPorts(ctx)
	if err != nil {
		return "", err
	}
	var wired *ethernetSettings
	for i := range items {
		if strings.HasSuffix(items[i].InstanceID, "Settings 0") {
			wired = &items[i]
		}
	}
	switch {
	case wired == nil:
		return msgNoWiredSettings, errors.New(msgNoWiredSettings)
	case wired.MACAddress == "":
		return msgWirelessOnly, errors.New(msgWirelessOnly)
	case wired.IPAddress == ipc.IPAddress:
		return msgIPSynchronized, errors.New(msgIPSynchronized)
	}
	req := ethernetRequest(*wired)
	if wired.DHCPEnabled {
		req.IpSyncEnabled = true
		req.IPAddress, req.SubnetMask, req.DefaultGateway, req.PrimaryDNS, req.SecondaryDNS = "", "", "", "", ""
	} else {
		req.IpSyncEnabled, req.SharedStaticIp = false, false
		req.IPAddress, req.SubnetMask, req.DefaultGateway = ipc.IPAddress, ipc.Netmask, ipc.Gateway
		req.PrimaryDNS, req.SecondaryDNS = ipc.PrimaryDNS, ipc.SecondaryDNS
	}
	if err := e.do(ctx, s.client, func(m wsman.Messages) error {
		_, err := m.AMT.EthernetPortSettings.Put(wired.InstanceID, req)
		return err
	}); err != nil {
		return "", err
	}
	if s.p.TLSEnforced {
		// AMT restarts its link and TLS after an Ethernet Put
		// (activation.md §13).
		return "", s.wait(ctx, e.timing.TLSDelay)
	}
	return "", nil
}

// syncHostname writes the host's name and DNS suffix to AMT and the device
// record.
func (e *Engine) syncHostname(ctx context.Context, s *session) (string, error) {
	hi := s.p.HostnameInfo
	if hi.Hostname == "" {
		return "missing hostname", errors.New("missing hostname")
	}
	g := s.general
	if g.HostName == hi.Hostname && (hi.DNSSuffixOS == "" || g.DomainName == hi.DNSSuffixOS) {
		return msgHostnameSynchronize, errors.New(msgHostnameSynchronize)
	}
	req := generalRequest(g)
	req.HostName = hi.Hostname
	if hi.DNSSuffixOS != "" {
		req.DomainName = hi.DNSSuffixOS
	}
	if err := e.do(ctx, s.client, func(m wsman.Messages) error {
		_, err := m.AMT.GeneralSettings.Put(req)
		return err
	}); err != nil {
		return "", err
	}
	wctx := context.WithoutCancel(ctx)
	d, err := e.cfg.Store.GetDevice(wctx, s.guid)
	if err == nil && d != nil {
		d.Hostname = hi.Hostname
		if hi.DNSSuffixOS != "" {
			d.DNSSuffix = hi.DNSSuffixOS
		}
		if _, err := e.cfg.Store.PutDevice(wctx, d); err != nil {
			s.j.Fail(ctx, "device.record", err)
		}
	}
	return "", nil
}

// syncDeviceInfo updates the device record's firmware information from the
// first message (no WS-MAN).
func (e *Engine) syncDeviceInfo(ctx context.Context, s *session) (string, error) {
	wctx := context.WithoutCancel(ctx)
	d, err := e.cfg.Store.GetDevice(wctx, s.guid)
	if errors.Is(err, store.ErrNotFound) || (err == nil && d == nil) {
		return "device is not registered", errors.New("device is not registered")
	}
	if err != nil {
		return "", err
	}
	if d.TenantID != s.tenant {
		return "device belongs to another tenant", errors.New("device belongs to another tenant")
	}
	p := s.p
	now := e.now().UTC()
	info := d.DeviceInfo
	if info == nil {
		info = &store.DeviceInfo{}
	}
	info.FWVersion, info.FWBuild, info.FWSku = p.Ver, p.Build, p.SKU
	info.CurrentMode = fmt.Sprint(p.CurrentMode)
	info.Features = p.Features
	if p.IPConfiguration != nil && p.IPConfiguration.IPAddress != "" {
		info.IPAddress = p.IPConfiguration.IPAddress
	}
	info.LastUpdated = &now
	d.DeviceInfo = info
	if _, err := e.cfg.Store.PutDevice(wctx, d); err != nil {
		return "", err
	}
	return "", nil
}
