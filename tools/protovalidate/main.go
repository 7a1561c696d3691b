// Writes buf/validate/validate.proto as source under the given directory, printed from the
// FileDescriptorSet read on stdin (scripts/protovalidate-set.mjs writes it from the descriptor
// @bufbuild/protovalidate embeds, so the source has the exact version the guard's validator
// reads). The buf compiler that turns contracts into descriptors needs every import as source;
// the well-known types the set also carries are left out, since buf ships its own.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jhump/protoreflect/desc"
	"github.com/jhump/protoreflect/desc/protoprint"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: protovalidate <out-dir> < descriptor-set.binpb")
		os.Exit(2)
	}
	if err := write(os.Stdin, os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func write(in io.Reader, dir string) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	set := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(data, set); err != nil {
		return fmt.Errorf("stdin is not a FileDescriptorSet: %w", err)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return err
	}
	printed := []*desc.FileDescriptor{}
	for _, file := range set.GetFile() {
		if strings.HasPrefix(file.GetName(), "google/protobuf/") {
			continue
		}
		found, err := files.FindFileByPath(file.GetName())
		if err != nil {
			return err
		}
		wrapped, err := desc.WrapFile(found)
		if err != nil {
			return err
		}
		printed = append(printed, wrapped)
	}
	if len(printed) == 0 {
		return fmt.Errorf("the descriptor set holds only well-known types")
	}
	printer := protoprint.Printer{}
	return printer.PrintProtosToFileSystem(printed, dir)
}
