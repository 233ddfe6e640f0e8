package main

import (
	"github.com/urfave/cli/v2"

	"github.com/kubling/kubling/pkg/config"
)

// configFlag names the configuration file; FILE.d/*.yaml are read after it.
func configFlag() cli.Flag {
	return &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "configuration file (keys are flag names; FILE.d/*.yaml are read after it)", Value: config.DefaultConfigFile, EnvVars: []string{"KUBLING_CONFIG_FILE"}}
}

// applyConfigFiles fills every flag that neither the command line nor the
// environment set from the configuration files: files, then KUBLING_* env,
// then flags, each overriding the one before.
func applyConfigFiles(ctx *cli.Context, flags []cli.Flag) error {
	kinds := map[string]config.FlagKind{}
	for _, f := range flags {
		name := f.Names()[0]
		if name == "config" {
			continue
		}
		switch f.(type) {
		case *cli.StringSliceFlag:
			kinds[name] = config.List
		case *cli.BoolFlag:
			kinds[name] = config.Bool
		default:
			kinds[name] = config.Scalar
		}
	}
	values, err := config.LoadFiles(ctx.String("config"), ctx.IsSet("config"), kinds)
	if err != nil {
		return err
	}
	for name, vals := range values {
		if ctx.IsSet(name) {
			continue
		}
		for _, v := range vals {
			if err := ctx.Set(name, v); err != nil {
				return err
			}
		}
	}
	return nil
}
