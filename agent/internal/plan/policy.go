package plan

import (
	"slices"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// tierPolicy turns a client export tier into rules.
func tierPolicy(x config.Export) model.Policy {
	prefixes, comms := x.Compiled()
	switch x.Tier {
	case config.TierDefault:
		return model.Policy{DefaultReject: true, Rules: []model.Rule{
			{Name: "tier-default", Match: model.Match{DefaultRoute: true}, Action: model.Action{Accept: true}},
		}}
	case config.TierPartial:
		p := model.Policy{DefaultReject: true}
		if len(prefixes) > 0 {
			p.Rules = append(p.Rules, model.Rule{Name: "tier-partial-prefixes", Match: model.Match{Prefixes: prefixes}, Action: model.Action{Accept: true}})
		}
		if len(comms) > 0 {
			p.Rules = append(p.Rules, model.Rule{Name: "tier-partial-communities", Match: model.Match{Communities: comms}, Action: model.Action{Accept: true}})
		}
		return p
	}
	return model.Policy{}
}

// applyBoundaryRules puts each policy rule, in configuration order, before
// the groups' own tier rules.
func applyBoundaryRules(c *config.Config, groups []model.PeerGroup) {
	for gi := range groups {
		g := &groups[gi]
		var exp, imp []model.Rule
		for _, r := range c.Policy {
			prefixes, comms := r.Compiled()
			remove, add := r.CompiledCommunityActions()
			rule := model.Rule{
				Name:  r.Name,
				Match: model.Match{Communities: comms, Prefixes: prefixes},
				Action: model.Action{
					Reject:            r.Action == config.ActionReject,
					Accept:            r.Action == config.ActionAccept,
					SetLocalPref:      r.SetLocalPref,
					SetMED:            r.SetMED,
					RemoveCommunities: remove,
					AddCommunities:    add,
					Prepend:           r.Prepend,
				},
			}
			if targets(r.Towards, g) {
				exp = append(exp, rule)
			}
			if targets(r.From, g) {
				imp = append(imp, rule)
			}
		}
		g.Export.Rules = append(exp, g.Export.Rules...)
		g.Import.Rules = append(imp, g.Import.Rules...)
	}
}

func targets(list []config.Target, g *model.PeerGroup) bool {
	return slices.ContainsFunc(list, func(t config.Target) bool { return t.Selects(*g) })
}
