// Writes Envoy's ext_proc API (envoy.service.ext_proc.v3 and every file it imports) as .proto
// files under the given directory. They are printed from go-control-plane's descriptors: the Envoy
// project's generated API for the same Envoy release the guard is tested with, fetched from the Go
// module proxy at build time. So the repo carries no copy of Envoy's .proto files, and the guard
// knows every field of that release (streamed_response, FULL_DUPLEX_STREAMED), which the npm
// packages shipping Envoy's .proto files lag behind. Source text rather than a descriptor set:
// protobufjs reads map fields (google.protobuf.Struct, metadata) right only from source.
package main

import (
	"fmt"
	"os"

	_ "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/jhump/protoreflect/desc"
	"github.com/jhump/protoreflect/desc/protoprint"
	"google.golang.org/protobuf/reflect/protoregistry"
)

const root = "envoy/service/ext_proc/v3/external_processor.proto"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: envoy-api <out-dir>")
		os.Exit(2)
	}
	if err := write(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func write(dir string) error {
	registered, err := protoregistry.GlobalFiles.FindFileByPath(root)
	if err != nil {
		return err
	}
	file, err := desc.WrapFile(registered)
	if err != nil {
		return err
	}
	files := []*desc.FileDescriptor{}
	seen := map[string]bool{}
	var add func(*desc.FileDescriptor)
	add = func(file *desc.FileDescriptor) {
		if seen[file.GetName()] {
			return
		}
		seen[file.GetName()] = true
		files = append(files, file)
		for _, dependency := range file.GetDependencies() {
			add(dependency)
		}
	}
	add(file)
	printer := protoprint.Printer{}
	return printer.PrintProtosToFileSystem(files, dir)
}
