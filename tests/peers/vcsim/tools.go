// A guest without VMware Tools: ShutdownGuest answers the ToolsUnavailable
// fault, as ESXi does (vSphere Web Services API reference, fault
// ToolsUnavailable: "thrown by ... ShutdownGuest"; "thrown when an operation
// fails to contact VMware Tools running inside the virtual machine"), where
// govmomi 0.24's simulator powers the VM off as if Tools had been asked.
//
// Opt-in per VM, so that the simulator's inventory VMs (whose Tools never run)
// keep their old behaviour for other tests: a VM whose extraConfig has
// vmigrate.test.noTools = "TRUE" and whose guest.toolsRunningStatus is not
// guestToolsRunning gets the fault. See tests/peers/README.md.
package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

const noToolsKey = "vmigrate.test.noTools"

type toolsHandler struct {
	next http.Handler
}

func (h *toolsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, ok := sdkBody(w, r, "", nil, h.next)
	if !ok {
		return
	}
	if !bytes.Contains(body, []byte("ShutdownGuest")) {
		h.next.ServeHTTP(w, r)
		return
	}
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil || method.Name != "ShutdownGuest" || !guestWithoutTools(method.Body.(*types.ShutdownGuest).This) {
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.next.ServeHTTP(w, r)
		return
	}
	writeSoap(w, http.StatusInternalServerError, &soapFault{
		Code:   "ServerFaultCode",
		String: "Cannot complete operation because VMware Tools is not running in this virtual machine.",
		Detail: faultDetailWrap{&faultDetail{&types.ToolsUnavailable{}}},
	})
}

// guestWithoutTools: the VM opted in, is powered on and its Tools do not run.
func guestWithoutTools(ref types.ManagedObjectReference) bool {
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return false
	}
	out := false
	simulator.Map.WithLock(vm, func() {
		marked := false
		for _, o := range vm.Config.ExtraConfig {
			if v := o.GetOptionValue(); v.Key == noToolsKey && strings.EqualFold(fmt.Sprint(v.Value), "TRUE") {
				marked = true
			}
		}
		running := vm.Guest != nil && vm.Guest.ToolsRunningStatus == string(types.VirtualMachineToolsRunningStatusGuestToolsRunning)
		on := vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
		out = marked && on && !running
	})
	return out
}
