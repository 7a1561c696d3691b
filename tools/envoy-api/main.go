// Writes Envoy's ext_proc API (envoy.service.ext_proc.v3 and every file it imports) as a
// FileDescriptorSet. The descriptors come from go-control-plane, the Envoy project's generated API
// for the same Envoy release the guard is tested with, fetched from the Go module proxy at build
// time: the repo carries no copy of Envoy's .proto files, and the guard decodes exactly the fields
// of that release (streamed_response, FULL_DUPLEX_STREAMED), which the npm packages lag behind.
package main

import (
	"fmt"
	"os"

	_ "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// camelCaseNames renames fields and oneofs to their JSON (lowerCamel) names, the shape the guard's
// codec (@grpc/proto-loader over protobufjs) reads and writes: loading a descriptor set, unlike
// parsing .proto text, does not apply its keepCase option. The wire format uses field numbers only.
func camelCaseNames(message *descriptorpb.DescriptorProto) {
	for _, field := range message.Field {
		field.Name = proto.String(lowerCamel(field.GetName()))
	}
	for _, oneof := range message.OneofDecl {
		oneof.Name = proto.String(lowerCamel(oneof.GetName()))
	}
	for _, nested := range message.NestedType {
		camelCaseNames(nested)
	}
}

func lowerCamel(name string) string {
	out := make([]byte, 0, len(name))
	upper := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_':
			upper = true
		case upper && c >= 'a' && c <= 'z':
			out = append(out, c-'a'+'A')
			upper = false
		default:
			out = append(out, c)
			upper = false
		}
	}
	return string(out)
}

const root = "envoy/service/ext_proc/v3/external_processor.proto"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: envoy-api <out.binpb>")
		os.Exit(2)
	}
	file, err := protoregistry.GlobalFiles.FindFileByPath(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	// Dependencies first: a reader that links files in order finds every import already loaded.
	var add func(protoreflect.FileDescriptor)
	add = func(file protoreflect.FileDescriptor) {
		if seen[file.Path()] {
			return
		}
		seen[file.Path()] = true
		imports := file.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		descriptor := protodesc.ToFileDescriptorProto(file)
		for _, message := range descriptor.MessageType {
			camelCaseNames(message)
		}
		set.File = append(set.File, descriptor)
	}
	add(file)
	bytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(set)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(os.Args[1], bytes, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
