// Delta chains, disk consolidation and slow snapshot removal: what ESXi does
// and govmomi 0.24.2's simulator does not (see tests/peers/README.md).
//
//   - POST /vmigrate-test {"op":"disk",...} puts one disk of a VM on a delta
//     (its backing gets a parent, as when a consolidation failed and the VM
//     kept running on alice-000001.vmdk) or renames its backing, and sets
//     runtime.consolidationNeeded;
//   - ConsolidateVMDisks_Task (MethodNotFound in the simulator) merges every
//     disk of a VM without snapshots back to its base and clears the flag;
//   - {"op":"slow","method":"RemoveSnapshot_Task","seconds":N} makes later
//     removals (and consolidations) a task that stays "running" for N seconds
//     after the call returned, as a consolidation under write load does on
//     ESXi; meanwhile other snapshot operations on that VM answer
//     TaskInProgress, and the task is in the VM's recentTask.
package main

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

var (
	busyMu sync.Mutex
	// VM moref -> the running slow task on it
	busy = map[string]types.ManagedObjectReference{}
	// SOAP method -> how long its task stays running
	slow = map[string]time.Duration{}
)

type controlRequest struct {
	Op                  string  `json:"op"`
	VM                  string  `json:"vm"`
	Key                 int32   `json:"key"`
	FileName            string  `json:"fileName"`
	Parent              bool    `json:"parent"`
	DeltaFormat         string  `json:"deltaDiskFormat"`
	ConsolidationNeeded *bool   `json:"consolidationNeeded"`
	Method              string  `json:"method"`
	Seconds             float64 `json:"seconds"`
}

// serveControl answers POST /vmigrate-test (tests only: the peer listens on 127.0.0.1).
func serveControl(w http.ResponseWriter, r *http.Request) {
	var req controlRequest
	serveOp(w, r, &req, func() error {
		switch req.Op {
		case "disk":
			return setDisk(&req)
		case "slow":
			busyMu.Lock()
			slow[req.Method] = time.Duration(req.Seconds * float64(time.Second))
			busyMu.Unlock()
			return nil
		}
		return fmt.Errorf("unknown op %q", req.Op)
	})
}

// setDisk gives one disk a new top backing. The device and backing are
// copied: snapshot configs share the VM's device pointers.
func setDisk(req *controlRequest) error {
	vm, err := vmNamed(req.VM)
	if err != nil {
		return err
	}
	simulator.Map.WithLock(vm, func() {
		err = replaceFlatDisks(vm, req.Key, req.Key == 0, func(nd *types.VirtualDisk, old *types.VirtualDiskFlatVer2BackingInfo) {
			nb := *old
			if req.FileName != "" {
				nb.FileName = req.FileName
			}
			if req.Parent {
				parent := *old
				nb.Parent = &parent
				nb.DeltaDiskFormat = req.DeltaFormat
				if nb.DeltaDiskFormat == "" {
					nb.DeltaDiskFormat = "seSparseFormat"
				}
			}
			nd.Backing = &nb
		})
		if err != nil {
			return
		}
		if req.ConsolidationNeeded != nil {
			v := *req.ConsolidationNeeded
			vm.Runtime.ConsolidationNeeded = &v
		}
	})
	return err
}

// consolidate merges each disk's chain into its base: the VM runs on the
// root file again. With snapshots present the deltas belong to them: nothing
// to merge here.
func consolidate(vm *simulator.VirtualMachine) {
	simulator.Map.WithLock(vm, func() {
		if vm.Snapshot != nil && len(vm.Snapshot.RootSnapshotList) > 0 {
			return
		}
		devices := make([]types.BaseVirtualDevice, len(vm.Config.Hardware.Device))
		copy(devices, vm.Config.Hardware.Device)
		for i, d := range devices {
			disk, ok := d.(*types.VirtualDisk)
			if !ok {
				continue
			}
			b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
			if !ok || b.Parent == nil {
				continue
			}
			root := b
			for root.Parent != nil {
				root = root.Parent
			}
			nb := *root
			nd := *disk
			nd.Backing = &nb
			devices[i] = &nd
		}
		vm.Config.Hardware.Device = devices
		f := false
		vm.Runtime.ConsolidationNeeded = &f
	})
}

// snapshotCall handles RemoveSnapshot_Task, ConsolidateVMDisks_Task and
// CreateSnapshot_Task; false lets the simulator serve the call itself.
func (h *qcdaHandler) snapshotCall(w http.ResponseWriter, r *http.Request, method *simulator.Method) bool {
	var vm *simulator.VirtualMachine
	var snap *simulator.VirtualMachineSnapshot
	switch method.Name {
	case "CreateSnapshot_Task", "ConsolidateVMDisks_Task":
		vm, _ = simulator.Map.Get(method.This).(*simulator.VirtualMachine)
	case "RemoveSnapshot_Task":
		snap, _ = simulator.Map.Get(method.This).(*simulator.VirtualMachineSnapshot)
		if snap != nil {
			vm, _ = simulator.Map.Get(snap.Vm).(*simulator.VirtualMachine)
		}
	default:
		return false
	}
	if vm == nil {
		return false // the simulator's own ManagedObjectNotFound / MethodNotFound
	}
	if rec := h.checkSession(r); rec != nil {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return true
	}
	busyMu.Lock()
	running, isBusy := busy[vm.Self.Value]
	delay := slow[method.Name]
	busyMu.Unlock()
	if isBusy {
		// ESXi: "Another task is already in progress." (vim.fault.TaskInProgress)
		writeSoap(w, http.StatusInternalServerError, &soapFault{
			Code:   "ServerFaultCode",
			String: "Another task is already in progress.",
			Detail: faultDetailWrap{&faultDetail{&types.TaskInProgress{Task: running}}},
		})
		return true
	}
	switch method.Name {
	case "CreateSnapshot_Task":
		return false
	case "ConsolidateVMDisks_Task":
		task := simulator.CreateTask(vm, "consolidateVMDisksTask", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
			time.Sleep(delay)
			consolidate(vm)
			return nil, nil
		})
		h.runTask(w, vm, task, delay > 0, &consolidateResponse{})
		return true
	}
	// RemoveSnapshot_Task
	if delay == 0 {
		return false
	}
	req := method.Body.(*types.RemoveSnapshot_Task)
	task := simulator.CreateTask(snap, "removeSnapshotTask", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		time.Sleep(delay)
		snap.RemoveSnapshotTask(&simulator.Context{}, req)
		return nil, nil
	})
	h.runTask(w, vm, task, true, &removeResponse{})
	return true
}

type taskResponse interface{ set(types.ManagedObjectReference) }

type consolidateResponse struct {
	XMLName   xml.Name                     `xml:"urn:vim25 ConsolidateVMDisks_TaskResponse"`
	Returnval types.ManagedObjectReference `xml:"returnval"`
}

func (c *consolidateResponse) set(r types.ManagedObjectReference) { c.Returnval = r }

type removeResponse struct {
	XMLName   xml.Name                     `xml:"urn:vim25 RemoveSnapshot_TaskResponse"`
	Returnval types.ManagedObjectReference `xml:"returnval"`
}

func (c *removeResponse) set(r types.ManagedObjectReference) { c.Returnval = r }

// runTask runs task (in the background when async: the call returns while the
// task is still running, as on ESXi) and answers with its reference. While it
// runs, the VM is busy and the task is in the VM's recentTask.
func (h *qcdaHandler) runTask(w http.ResponseWriter, vm *simulator.VirtualMachine, task *simulator.Task, async bool, resp taskResponse) {
	busyMu.Lock()
	busy[vm.Self.Value] = task.Self
	busyMu.Unlock()
	simulator.Map.WithLock(vm, func() {
		vm.RecentTask = append(append([]types.ManagedObjectReference{}, vm.RecentTask...), task.Self)
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		task.Run()
		busyMu.Lock()
		delete(busy, vm.Self.Value)
		busyMu.Unlock()
	}()
	if !async {
		<-done
	}
	resp.set(task.Self)
	writeSoap(w, http.StatusOK, resp)
}
