package rpcproto

import "strings"

// Command is the first message's method string parsed the way RPS parses it
// (minimist over a split on single spaces, rpc-protocol.md §4).
type Command struct {
	Name     string // "activate", "deactivate", "maintenance", or what was sent
	Profile  string
	Password string // from --password / -password / -p; "" when absent
	Force    bool
	Task     string // maintenance: synctime, syncip, changepassword, synchostname, syncdeviceinfo
	TaskArg  string // changepassword: the new password, if given
	HasPass  bool
}

var (
	stringOpts = map[string]string{"text": "text", "t": "text", "password": "password", "p": "password", "profile": "profile"}
	boolOpts   = map[string]string{"force": "force", "f": "force", "synctime": "synctime", "syncip": "syncip",
		"changepassword": "changepassword", "synchostname": "synchostname", "syncdeviceinfo": "syncdeviceinfo",
		"e": "encrypted", "encrypted": "encrypted"}
	maintenanceTasks = []string{"synctime", "syncip", "changepassword", "synchostname", "syncdeviceinfo"}
)

// ParseCommand tokenises a method string like rpc-go builds it. Words are
// separated by single spaces, so values with spaces cannot be transported
// (as with RPS).
func ParseCommand(method string) Command {
	words := strings.Split(method, " ")
	var c Command
	flags := map[string]bool{}
	var positional []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "" {
			continue
		}
		if !strings.HasPrefix(w, "-") || w == "-" {
			positional = append(positional, w)
			continue
		}
		name := strings.TrimLeft(w, "-")
		val, hasVal := "", false
		if k, v, ok := strings.Cut(name, "="); ok {
			name, val, hasVal = k, v, true
		}
		if opt, ok := stringOpts[name]; ok {
			if !hasVal && i+1 < len(words) {
				val = words[i+1]
				i++
			}
			switch opt {
			case "password":
				c.Password, c.HasPass = val, true
			case "profile":
				c.Profile = val
			}
			continue
		}
		if opt, ok := boolOpts[name]; ok {
			if hasVal {
				flags[opt] = val != "false"
			} else {
				flags[opt] = true
			}
			continue
		}
		// Unknown option: minimist treats a following non-dash word as its value.
		if !hasVal && i+1 < len(words) && !strings.HasPrefix(words[i+1], "-") {
			i++
		}
	}
	if len(positional) > 0 {
		c.Name = positional[0]
		positional = positional[1:]
	}
	c.Force = flags["force"]
	if c.Name == "maintenance" {
		for _, t := range maintenanceTasks {
			if flags[t] {
				c.Task = t
				break
			}
		}
		if c.Task == "changepassword" && len(positional) > 0 {
			c.TaskArg = positional[0]
		}
	}
	return c
}
