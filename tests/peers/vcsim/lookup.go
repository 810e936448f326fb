// What the peer's parts (chains, realhost, identity, dvports) share: finding
// managed objects and NICs in the simulator's registry, and the test control
// endpoints' JSON in, {"ok":true} or a 400 out.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// findNamed returns the managed object of kind (e.g. "HostSystem") named name,
// as T; the zero T (nil) when there is none.
func findNamed[T mo.Entity](kind, name string) T {
	var none T
	for _, e := range simulator.Map.All(kind) {
		if obj, ok := e.(T); ok && obj.Entity().Name == name {
			return obj
		}
	}
	return none
}

func findVM(name string) *simulator.VirtualMachine {
	return findNamed[*simulator.VirtualMachine]("VirtualMachine", name)
}

func findHost(name string) *simulator.HostSystem {
	return findNamed[*simulator.HostSystem]("HostSystem", name)
}

// vmNamed is findVM for the control endpoint: a name it does not know is an error.
func vmNamed(name string) (*simulator.VirtualMachine, error) {
	if vm := findVM(name); vm != nil {
		return vm, nil
	}
	return nil, fmt.Errorf("no VM %q", name)
}

// nicsOf lists a VM's Ethernet cards (call it under the VM's lock).
func nicsOf(vm *simulator.VirtualMachine) []*types.VirtualEthernetCard {
	var out []*types.VirtualEthernetCard
	if vm.Config == nil {
		return out
	}
	for _, d := range vm.Config.Hardware.Device {
		if c, ok := d.(types.BaseVirtualEthernetCard); ok {
			out = append(out, c.GetVirtualEthernetCard())
		}
	}
	return out
}

// eachOtherNic calls fn for every NIC of every VM but self, under that VM's lock,
// with the owning VM's name (MAC and port clashes are about the others).
func eachOtherNic(self types.ManagedObjectReference, fn func(owner string, card *types.VirtualEthernetCard)) {
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm, ok := e.(*simulator.VirtualMachine)
		if !ok || vm.Self == self {
			continue
		}
		simulator.Map.WithLock(vm, func() {
			for _, card := range nicsOf(vm) {
				fn(vm.Name, card)
			}
		})
	}
}

// serveOp answers a test control request: the body's JSON into req, then op;
// {"ok":true} when op returns nil, else its error as a 400.
func serveOp(w http.ResponseWriter, r *http.Request, req any, op func() error) {
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, req); err != nil {
		http.Error(w, "bad json: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := op(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}` + "\n"))
}

// replaceFlatDisks gives each flat disk of vm that key names (every disk: all)
// the backing change sets on a copy of its device; the device list is copied
// too, since snapshot configs share the VM's device pointers. Call it under the
// VM's lock.
func replaceFlatDisks(vm *simulator.VirtualMachine, key int32, all bool,
	change func(nd *types.VirtualDisk, old *types.VirtualDiskFlatVer2BackingInfo)) error {
	devices := make([]types.BaseVirtualDevice, len(vm.Config.Hardware.Device))
	copy(devices, vm.Config.Hardware.Device)
	found := false
	for i, d := range devices {
		disk, ok := d.(*types.VirtualDisk)
		if !ok || (!all && disk.Key != key) {
			continue
		}
		old, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok {
			return fmt.Errorf("disk %d is not flat", disk.Key)
		}
		nd := *disk
		change(&nd, old)
		devices[i] = &nd
		found = true
	}
	if !found {
		return fmt.Errorf("VM %s has no disk %d", vm.Name, key)
	}
	vm.Config.Hardware.Device = devices
	return nil
}
